"""Observation and action spaces: CNN encoders on images, dict observations with a
privileged critic, per-key normalisation, MultiDiscrete and masked actions; and that
they keep the trainer's guarantees (resume, export, sweeps)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import SMALL, assert_trees_close, assert_trees_equal

import purejaxppo
from purejaxppo import Config, InvalidMaskError, fit, load_policy, make_policy, save_policy
from purejaxppo.core import normalize as norm
from purejaxppo.core.observations import init_obs_stats, observe, update_obs_stats
from purejaxppo.core.setup import make_setup
from purejaxppo.envs import probes
from purejaxppo.nn.distributions import Categorical, MultiCategorical, mask_logits
from purejaxppo.nn.encoders import CNN, Conv, conv_output_shape, default_cnn
from purejaxppo.nn.networks import example_obs

QUIET = dict(compile_cache=False, progress=False)
# One-step probes: 16 envs x 8 steps = 128 transitions per update.
PROBE = dict(num_envs=16, num_steps=8, num_minibatches=2, update_epochs=4, lr=3e-3)
PRIVILEGED = dict(PROBE, env="probe/PrivilegedReward", policy_obs_key="state", total_timesteps=6400)


def _jit_train(config: Config, seed: int = 0):
    return jax.block_until_ready(jax.jit(purejaxppo.train)(config, jax.random.key(seed)))


def _reset_obs(config: Config, n: int, seed: int = 1):
    """n fresh observations of the config's env, as the env gives them (one each)."""
    setup = make_setup(config)
    keys = jax.random.split(jax.random.key(seed), n)
    obs, _ = jax.vmap(setup.env.reset, in_axes=(0, None))(keys, setup.env_params)
    return obs


# ---- CNN ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "features"),
    [((10, 10, 4), 8 * 8 * 16), ((64, 64, 3), 4 * 4 * 64)],
    ids=["minatar-10x10x4", "pixels-64x64x3"],
)
def test_default_cnn_output_shapes(image, features):
    layers = default_cnn(image)
    assert math.prod(conv_output_shape(layers, image)) == features
    cnn = CNN(layers)
    x = jnp.zeros((2, 3, *image), jnp.float32)  # any leading batch axes
    params = cnn.init(jax.random.key(0), x)
    assert cnn.apply(params, x).shape == (2, 3, features)


@pytest.mark.parametrize(("kernel", "stride", "size"), [(3, 1, 10), (8, 4, 64), (4, 2, 15)])
def test_conv_is_the_valid_convolution(kernel, stride, size):
    x = jax.random.normal(jax.random.key(0), (2, size, size, 3))
    conv = Conv(5, kernel, stride)
    params = conv.init(jax.random.key(1), x)
    expected = jax.lax.conv_general_dilated(
        x,
        params["params"]["kernel"],
        (stride, stride),
        "VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    got = conv.apply(params, x)
    np.testing.assert_allclose(got, expected + params["params"]["bias"], rtol=1e-5, atol=1e-5)


def test_a_cnn_that_does_not_fit_its_image_is_refused_before_compiling():
    config = Config(env="probe/PixelActionReward", cnn_channels=(8, 8), cnn_kernels=(5, 7))
    with pytest.raises(
        ValueError, match=r"cnn_kernels=\(5, 7\): layer 1 has a 7x7 kernel .*is 6x6"
    ):
        make_setup(config)


def test_pixel_probe_learns_through_the_cnn():
    """uint8 images [10, 10, 1]: the rewarded action is the stripe the block is in."""
    config = Config(env="probe/PixelActionReward", total_timesteps=3840, **PROBE)
    out = _jit_train(config)
    assert jax.tree.leaves(out.state.params["params"]["actor_encoder"])  # a CNN was built
    assert out.state.obs_stats == {}  # images are never normalised
    obs = _reset_obs(config, 64)
    action = make_policy(config, out.state, deterministic=True)(obs)
    env = make_setup(config).env
    np.testing.assert_array_equal(action, jax.vmap(env.stripe_of)(obs))


# ---- per-key normalisation --------------------------------------------------------------


def test_per_key_statistics_equal_numpy():
    spec = make_setup(Config(env="probe/PrivilegedReward")).spec
    stats = init_obs_stats(spec)
    assert set(stats) == {"privileged_state", "state"}
    rng = np.random.default_rng(0)
    batches = [
        {"state": rng.normal(2.0, 3.0, (5, 7, 2)), "privileged_state": rng.normal(size=(5, 7, 1))}
        for _ in range(3)
    ]
    for batch in batches:
        stats = update_obs_stats(stats, jax.tree.map(jnp.asarray, batch))
    for key in stats:
        data = np.concatenate([b[key].reshape(-1, b[key].shape[-1]) for b in batches])
        np.testing.assert_allclose(stats[key].mean, data.mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(stats[key].var, data.var(0), rtol=1e-4)
        assert float(stats[key].count) == len(data)
    # observe normalises each key with its own statistics and passes the rest through.
    config = Config(normalize_obs=True)
    x = {"state": jnp.ones((4, 2)), "privileged_state": jnp.ones((4, 1)), "other": jnp.ones(4)}
    seen = observe(config, stats, x)
    np.testing.assert_allclose(seen["state"], norm.normalize(stats["state"], x["state"], 10.0))
    np.testing.assert_array_equal(seen["other"], x["other"])


def test_training_keeps_statistics_per_key_and_counts_every_observation():
    config = Config(**{**PRIVILEGED, "total_timesteps": 512}, normalize_obs=True)
    stats = _jit_train(config).state.obs_stats
    assert set(stats) == {"privileged_state", "state"}
    assert stats["state"].mean.shape == (2,) and stats["privileged_state"].mean.shape == (1,)
    assert float(stats["state"].count) == config.total_timesteps
    # The privileged sign is +-1 with equal odds: mean near 0, variance near 1.
    assert abs(float(stats["privileged_state"].var[0]) - 1.0) < 0.05


# ---- privileged critic ------------------------------------------------------------------


@pytest.fixture(scope="module")
def privileged_runs():
    """The same policy inputs; the critic reads the privileged sign or only the noise."""
    with_key = Config(**PRIVILEGED, value_obs_key=("privileged_state", "state"))
    without = Config(**PRIVILEGED, value_obs_key="state")
    return (with_key, _jit_train(with_key)), (without, _jit_train(without))


def test_the_privileged_critic_explains_what_the_policy_cannot_see(privileged_runs):
    (_, out_with), (_, out_without) = privileged_runs
    ev_with = float(np.mean(out_with.metrics["explained_variance"][-10:]))
    ev_without = float(np.mean(out_without.metrics["explained_variance"][-10:]))
    assert ev_with > 0.9, ev_with
    assert ev_without < 0.1, ev_without
    # The actor has no weights on the privileged key: its encoder reads "state" only.
    params = out_with.state.params["params"]
    assert params["actor_torso"]["Dense_0"]["kernel"].shape[0] == 2
    assert params["critic_torso"]["Dense_0"]["kernel"].shape[0] == 3


def test_an_exported_policy_acts_without_the_privileged_key(privileged_runs, tmp_path):
    (config, out), _ = privileged_runs
    save_policy(tmp_path / "policy", config, out.state)
    policy = load_policy(tmp_path / "policy", deterministic=True)
    obs = _reset_obs(config, 32)
    robot = {"state": obs["state"]}  # what the robot has
    expected = make_policy(config, out.state, deterministic=True)(obs)
    np.testing.assert_array_equal(policy(robot), expected)
    np.testing.assert_array_equal(jax.jit(policy)(robot), expected)
    one = policy({"state": obs["state"][0]})
    assert one.shape == () and int(one) == int(expected[0])
    with pytest.raises(ValueError, match="observation key 'state' is missing"):
        policy({"privileged_state": obs["privileged_state"]})


def test_dict_observations_resume_exactly_and_export_bitwise(tmp_path):
    config = Config(
        env="probe/PrivilegedReward",
        policy_obs_key="state",
        normalize_obs=True,
        **{**SMALL, "total_timesteps": 512},
    )
    whole = fit(config, 3, out=tmp_path / "whole", chunk_updates=8, **QUIET)
    part = fit(config, 3, out=tmp_path / "part", chunk_updates=2, checkpoint_every=2, **QUIET)
    assert_trees_equal(part.state, whole.state)
    # Resume from the middle checkpoint: the same final state, normaliser included.
    for step in (6, 8):
        (tmp_path / "part" / "checkpoints" / str(step)).rename(tmp_path / f"aside-{step}")
    resumed = fit(config, 3, resume=tmp_path / "part", checkpoint_every=2, **QUIET)
    assert_trees_equal(resumed.state, whole.state)
    save_policy(tmp_path / "policy", config, resumed.state)
    policy = load_policy(tmp_path / "policy")
    act = make_policy(config, resumed.state)
    obs = _reset_obs(config, 16)
    key = jax.random.key(5)
    np.testing.assert_array_equal(policy(obs, key), act(obs, key))


# ---- masked actions ---------------------------------------------------------------------


def test_masked_categorical_counts_legal_actions_only():
    legal = jnp.array([[True, False, True, True, False, False], [False, True] + [False] * 4])
    dist = Categorical(mask_logits(jnp.zeros((2, 6)), legal))
    np.testing.assert_allclose(dist.entropy(), [math.log(3), 0.0], atol=1e-6)
    np.testing.assert_allclose(jnp.exp(dist.log_probs), legal / legal.sum(-1, keepdims=True))
    other = Categorical(mask_logits(jnp.arange(12.0).reshape(2, 6), legal))
    assert np.all(np.isfinite(dist.kl(other)))
    draws = jax.vmap(dist.sample)(jax.random.split(jax.random.key(0), 500))
    assert np.all(np.take_along_axis(np.asarray(legal), np.asarray(draws).T, 1))


def test_masked_policy_at_init_with_equal_logits_has_entropy_log_legal():
    config = Config(env="probe/MaskedActions")
    setup = make_setup(config)
    params = purejaxppo.init(config, jax.random.key(0)).params
    head = params["params"]["policy_head"]
    flat = {**params["params"], "policy_head": jax.tree.map(jnp.zeros_like, head)}
    obs = _reset_obs(config, 64)
    dist = setup.network.apply({"params": flat}, obs, method="policy")
    legal = np.asarray(obs["action_mask"]).sum(-1)
    np.testing.assert_allclose(dist.entropy(), np.log(legal), rtol=1e-6)


@pytest.fixture(scope="module")
def masked_run():
    config = Config(env="probe/MaskedActions", total_timesteps=12800, **PROBE)
    return config, _jit_train(config)


def test_illegal_actions_are_never_taken_and_the_best_legal_one_is_learned(masked_run):
    config, out = masked_run
    # An illegal action pays 10: a return above 1 would mean one was taken.
    assert float(np.nanmax(out.metrics["episode_return"])) <= 1.0
    assert int(out.metrics["empty_action_masks"].sum()) == 0
    obs = _reset_obs(config, 256)
    env = make_setup(config).env
    best = jax.vmap(env.best_action)(obs)
    greedy = make_policy(config, out.state, deterministic=True)(obs)
    assert float(np.mean(np.asarray(greedy) == np.asarray(best))) >= 0.95
    sampled = make_policy(config, out.state)(obs, jax.random.key(3))
    assert np.all(np.take_along_axis(np.asarray(obs["action_mask"]), sampled[:, None], 1))
    result = purejaxppo.evaluate(config, out.state, jax.random.key(4), num_episodes=64)
    assert float(result.returns.max()) <= 1.0


class _SometimesNoLegalAction(probes.MaskedActions):
    """MaskedActions whose mask is empty on every fourth reset."""

    def reset_env(self, key, params):
        obs, state = super().reset_env(key, params)
        empty = jax.random.uniform(jax.random.fold_in(key, 1)) < 0.25
        mask = obs["action_mask"] & ~empty
        obs = {"action_mask": mask, "observation": mask.astype(jnp.float32)}
        return obs, state.replace(obs=obs)


def test_a_mask_with_no_legal_action_stops_fit_with_a_clear_error(tmp_path):
    config = Config(env=_SometimesNoLegalAction(), **SMALL)
    with pytest.raises(InvalidMaskError, match="action mask with no legal action"):
        fit(config, 0, out=tmp_path / "run", **QUIET)


# ---- MultiDiscrete ----------------------------------------------------------------------


def test_multi_categorical_sums_its_parts():
    nvec = (2, 3)
    padding = jnp.array([[True, True, False], [True, True, True]])
    logits = mask_logits(jnp.array([[0.5, -0.5, 9.0], [1.0, 0.0, -1.0]]), padding)
    dist = MultiCategorical(logits)
    action = jnp.array([1, 2])
    expected = jax.nn.log_softmax(jnp.array([0.5, -0.5]))[1] + jax.nn.log_softmax(logits[1])[2]
    np.testing.assert_allclose(dist.log_prob(action), expected, rtol=1e-6)
    flat = MultiCategorical(mask_logits(jnp.zeros((2, 3)), padding))
    np.testing.assert_allclose(flat.entropy(), math.log(2) + math.log(3), rtol=1e-6)
    draws = jax.vmap(dist.sample)(jax.random.split(jax.random.key(0), 300))
    assert draws.shape == (300, 2) and int(draws[:, 0].max()) < nvec[0]


def test_each_sub_action_learns_its_own_best_choice():
    config = Config(env="probe/MultiDiscreteTarget", total_timesteps=6400, **PROBE)
    out = _jit_train(config)
    env = make_setup(config).env
    action = make_policy(config, out.state, deterministic=True)(jnp.zeros(1))
    assert action.shape == (3,)
    np.testing.assert_array_equal(action, env.targets)
    assert float(np.mean(out.metrics["episode_return"][-5:])) > 0.9


def test_multi_discrete_sweeps_like_any_program():
    configs = Config.sweep(Config(env="probe/MultiDiscreteTarget", **SMALL), lr=[1e-3, 3e-3])
    keys = jax.random.split(jax.random.key(0), 2)
    out = jax.jit(jax.vmap(purejaxppo.train))(configs, keys)
    assert out.state.obs.shape == (2, SMALL["num_envs"], 1)
    one = jax.jit(purejaxppo.train)(configs.unstack()[1], keys[1])
    assert_trees_close(jax.tree.map(lambda x: x[1], out.metrics), one.metrics)


# ---- config errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        (dict(policy_obs_key="state"), ValueError, r"policy_obs_key='state'.*single array"),
        (
            dict(env="probe/PrivilegedReward", value_obs_key="secret"),
            ValueError,
            r"value_obs_key='secret': key 'secret' is not a network input.*"
            r"\['privileged_state', 'state'\]",
        ),
        (
            dict(env="probe/MaskedActions", policy_obs_key="action_mask"),
            ValueError,
            "read by the policy head only",
        ),
    ],
)
def test_observation_keys_are_checked_against_the_env(fields, error, message):
    with pytest.raises(error, match=message):
        make_setup(Config(**fields))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            dict(shared_torso=True, policy_obs_key="state", value_obs_key="privileged_state"),
            "needs separate torsos",
        ),
        (dict(cnn_kernels=(3,)), "needs cnn_channels"),
        (dict(cnn_channels=(8, 8), cnn_strides=(1,)), "one entry per conv layer"),
        (dict(image_encoder="pixels"), "must be one of cnn, flatten"),
        (dict(policy_obs_key=("state", 3)), "a key .str. or a non-empty tuple"),
    ],
)
def test_space_fields_are_validated_when_the_config_is_built(fields, message):
    with pytest.raises((ValueError, TypeError), match=message):
        Config(env="probe/PrivilegedReward", **fields)


def test_flatten_keeps_images_as_vectors_for_the_mlp():
    spec = make_setup(Config(env="probe/PixelActionReward", image_encoder="flatten")).spec
    assert [(leaf.kind, leaf.shape) for leaf in spec.leaves] == [("vector", (100,))]
    assert example_obs(spec).shape == (1, 100)


def test_every_probe_env_is_registered_under_probe_ids():
    from purejaxppo.envs.registry import PROBE_ENVS

    classes = [n for n in probes.__all__ if isinstance(getattr(probes, n), type)]
    envs = [n for n in classes if issubclass(getattr(probes, n), probes.environment.Environment)]
    assert sorted(PROBE_ENVS) == sorted(envs)
    assert make_setup(Config(env="probe/MaskedActions")).env == probes.MaskedActions()
    with pytest.raises(ValueError, match="did you mean probe/MaskedActions"):
        Config(env="probe/MaskedAction")
