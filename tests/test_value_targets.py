"""core/value_targets.py: symlog, HL-Gauss and PopArt critics, by hand, and the probe
they exist for: values of a thousand units."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import SMALL, CallCounter

import purejaxppo
from purejaxppo import Config
from purejaxppo.core.setup import make_setup
from purejaxppo.core.value_targets import (
    PopArtStats,
    bin_centres,
    critic_loss,
    critic_value,
    hl_gauss_target,
    renormalize,
    symexp,
    symlog,
    update_popart,
    value_scale,
)
from purejaxppo.envs.probes import ObservationDependentReward

HL = dict(value_target="hl_gauss", clip_value_loss=False)


# ---- symlog ----------------------------------------------------------------------------


def test_symlog_round_trip_and_gradients():
    x = jnp.array([-1e6, -1000.0, -1.5, -1e-3, 0.0, 1e-3, 0.5, 1000.0, 1e6])
    np.testing.assert_allclose(symexp(symlog(x)), x, rtol=1e-5)
    np.testing.assert_allclose(symlog(jnp.e - 1.0), 1.0, rtol=1e-6)  # log(1 + e - 1) = 1
    # d/dx sign(x) log(1 + |x|) = 1 / (1 + |x|): 1 at 0 (identity-like), 1/1001 at 1000.
    grad = jax.vmap(jax.grad(symlog))(jnp.array([0.0, 1.0, -3.0, 1000.0]))
    np.testing.assert_allclose(grad, [1.0, 0.5, 0.25, 1 / 1001], rtol=1e-6)
    # symexp's derivative exp(|x|) is the inverse function's: 1 / symlog'(symexp(y)).
    grad = jax.vmap(jax.grad(symexp))(jnp.array([0.0, 1.0, -2.0]))
    np.testing.assert_allclose(grad, np.exp([0.0, 1.0, 2.0]), rtol=1e-6)


def test_symlog_loss_regresses_and_clips_in_symlog_space():
    config = Config(**SMALL, value_target="symlog", vf_clip_eps=0.2)
    returns = jnp.array([jnp.e - 1.0])  # symlog = 1
    old = jnp.zeros(1)  # symlog(0) = 0
    # Unclipped: head 0.5 -> 0.5 * (0.5 - 1)^2 = 0.125. Clipped: the prediction may move
    # 0.2 from symlog(old) = 0, to 0.2 -> 0.5 * (0.2 - 1)^2 = 0.32, the larger of the two.
    assert float(
        critic_loss(config.replace(clip_value_loss=False), jnp.array([0.5]), old, returns)
    ) == pytest.approx(0.125)
    assert float(critic_loss(config, jnp.array([0.5]), old, returns)) == pytest.approx(0.32)
    np.testing.assert_allclose(critic_value(config, jnp.array([1.0])), jnp.e - 1.0, rtol=1e-6)


# ---- HL-Gauss --------------------------------------------------------------------------


def test_hl_gauss_target_by_hand():
    # Bins [0, 1), [1, 2), [2, 3), sigma 1, return 1.5: the edges sit at z = -1.5, -0.5,
    # 0.5, 1.5 standard deviations; Phi = 0.066807, 0.308538, 0.691462, 0.933193. Masses
    # 0.241731, 0.382925, 0.241731 of 0.866386 inside [0, 3] -> 0.279011, 0.441978, 0.279011.
    target = hl_gauss_target(jnp.array(1.5), jnp.array([0.0, 1.0, 2.0, 3.0]), 1.0)
    np.testing.assert_allclose(target, [0.279011, 0.441978, 0.279011], atol=2e-6)
    # A return outside the range counts as its end: all the mass of N(3, 1) inside [0, 3]
    # lies below 3, most of it in the last bin.
    far = hl_gauss_target(jnp.array(50.0), jnp.array([0.0, 1.0, 2.0, 3.0]), 1.0)
    np.testing.assert_allclose(far.sum(), 1.0, rtol=1e-6)
    assert far[2] > far[1] > far[0]


def test_hl_gauss_critic_recovers_a_return_from_its_target():
    config = Config(**SMALL, **HL, value_bins=41, value_min=-10.0, value_max=10.0)
    np.testing.assert_allclose(
        np.asarray(bin_centres(config))[[0, 20, 40]], [-9.756098, 0.0, 9.756098], atol=1e-5
    )
    returns = jnp.array([-7.3, 0.0, 2.5, 8.9])
    sigma = 0.75 * 20.0 / 41
    target = hl_gauss_target(returns, jnp.linspace(-10.0, 10.0, 42), sigma)
    # Logits whose softmax is the target: the expected bin centre is the return (within
    # a fraction of a bin: near an end, the renormalised mass is slightly asymmetric).
    np.testing.assert_allclose(critic_value(config, jnp.log(target + 1e-30)), returns, atol=0.05)
    # The cross-entropy is smallest at the target itself (= its entropy).
    at_target = critic_loss(config, jnp.log(target + 1e-30), returns, returns)
    elsewhere = critic_loss(config, jnp.zeros_like(target), returns, returns)
    assert float(at_target) < float(elsewhere)


# ---- PopArt ----------------------------------------------------------------------------


def test_popart_statistics_start_from_the_first_batch():
    stats = PopArtStats(jnp.float32(0), jnp.float32(0), jnp.float32(0))
    np.testing.assert_allclose(value_scale(stats), [0.0, 1.0])  # nothing seen: the identity
    returns = jnp.array([1.0, 3.0, 5.0, 7.0])  # mean 4, population std sqrt(5)
    scale = value_scale(update_popart(stats, returns, 0.01))
    np.testing.assert_allclose(scale, [4.0, np.sqrt(5.0)], rtol=1e-5)  # bias-corrected
    # A constant return keeps a floor on the scale (no division by zero).
    const = value_scale(update_popart(stats, jnp.full(4, 2.0), 0.5))
    np.testing.assert_allclose(const, [2.0, 1e-2], rtol=1e-4)


def test_popart_preserves_the_unnormalised_outputs_when_its_statistics_update():
    config = Config(**SMALL, popart=True, popart_beta=0.3)
    setup = make_setup(config)
    state = purejaxppo.init(config, jax.random.key(0))
    obs = jax.random.normal(jax.random.key(1), (32, setup.spec.obs_dim))

    def values(params, stats):
        return critic_value(
            config, setup.network.apply(params, obs, method="value"), value_scale(stats)
        )

    params, stats = state.params, state.value_stats
    for i, (loc, spread) in enumerate([(500.0, 100.0), (-20.0, 3.0), (1e4, 1e3)]):
        returns = loc + spread * jax.random.normal(jax.random.key(10 + i), (64,))
        new_params, new_stats, scale = renormalize(config, params, stats, returns)
        assert not np.allclose(scale.std, value_scale(stats).std)  # the scale did move
        np.testing.assert_allclose(
            values(new_params, new_stats), values(params, stats), rtol=1e-4, atol=1e-3
        )
        # Only the value head changed.
        same = jax.tree.map(
            np.array_equal, new_params["params"]["actor_torso"], params["params"]["actor_torso"]
        )
        assert all(jax.tree.leaves(same))
        params, stats = new_params, new_stats


def test_popart_loss_is_the_normalised_squared_error():
    config = Config(**SMALL, popart=True, clip_value_loss=False)
    scale = value_scale(update_popart(PopArtStats(*jnp.zeros((3,))), jnp.array([90.0, 110.0]), 0.1))
    # mean 100, std 10: the return 120 normalises to 2, the head predicts 0.5:
    # 0.5 * (0.5 - 2)^2 = 1.125; its value is 100 + 10 * 0.5 = 105.
    loss = critic_loss(config, jnp.array([0.5]), jnp.array([0.0]), jnp.array([120.0]), scale)
    assert float(loss) == pytest.approx(1.125, rel=1e-5)
    assert float(critic_value(config, jnp.array(0.5), scale)) == pytest.approx(105.0)


# ---- the probe: values of a thousand units -----------------------------------------------

# ObservationDependentReward pays the observation, +-1, in one-step episodes; the learner
# sees it times 1000, so V(+-1) = +-1000. 25 updates of 8 x 16 steps, 4 epochs of 2
# minibatches: 200 gradient steps, nowhere near enough for a plain squared-error critic
# to climb to 1000 with Adam's step of about lr per weight.
PROBE = dict(
    env=ObservationDependentReward(),
    num_envs=8,
    num_steps=16,
    num_minibatches=2,
    update_epochs=4,
    total_timesteps=8 * 16 * 25,
    hidden_sizes=(16, 16),
    lr=3e-3,
    lr_schedule="constant",
    reward_scale=1000.0,
)


def _probe_values(config: Config, sweep: dict[str, list[float]]) -> np.ndarray:
    """V(+1) and V(-1) [points, 2] after training every point of the sweep in one
    compiled vmapped call, which is traced once."""
    swept = Config.sweep(config, **sweep)
    counter = CallCounter(purejaxppo.train)
    out = jax.jit(jax.vmap(counter, in_axes=(0, None)))(swept, jax.random.key(0))
    assert counter.calls == 1
    network = make_setup(config).network
    obs = jnp.array([[1.0], [-1.0]])

    def one(params, stats, c):
        return critic_value(c, network.apply(params, obs, method="value"), value_scale(stats))

    return np.asarray(jax.vmap(one)(out.state.params, out.state.value_stats, swept))


@pytest.mark.parametrize(
    ("fields", "sweep"),
    [
        ({"value_target": "symlog"}, {"vf_clip_eps": [0.2, 0.5]}),
        ({**HL, "value_min": -1100.0, "value_max": 1100.0}, {"hl_gauss_sigma": [0.5, 0.75]}),
        ({"popart": True}, {"popart_beta": [0.01, 0.1]}),
    ],
    ids=["symlog", "hl_gauss", "popart"],
)
def test_scale_free_critics_learn_values_of_a_thousand(fields, sweep):
    values = _probe_values(Config(**PROBE, **fields), sweep)
    np.testing.assert_allclose(values, [[1000.0, -1000.0]] * 2, rtol=0.06)


def test_plain_squared_error_falls_far_short_at_that_scale():
    values = _probe_values(Config(**PROBE), {"vf_clip_eps": [0.2, 1e9]})  # clipped or not
    assert np.all(np.abs(values) < 100.0)  # measured: about +-10 and +-12


# ---- configuration errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"value_target": "hl_gauss"}, r"Config.clip_value_loss=True: value_target='hl_gauss'"),
        ({**HL, "value_bins": 1}, r"Config.value_bins=1: value_target='hl_gauss' needs at least 2"),
        ({**HL, "value_min": 5.0, "value_max": 5.0}, r"Config.value_min=5: must be < value_max=5"),
        ({"value_target": "symlog", "popart": True}, r"Config.popart=True: .*'symlog'"),
        ({"value_target": "two_hot"}, r"Config.value_target='two_hot': must be one of mse"),
        ({"popart_beta": 0.0}, r"Config.popart_beta=0.0: must be in \(0, 1\]"),
    ],
)
def test_bad_value_target_settings_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        Config(**SMALL, **fields)
