"""Learning on real environments with fixed seeds, and continuous-action plumbing."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejaxppo
from purejaxppo import Config
from purejaxppo.core.rollout import collect_rollout, rollout_carry
from purejaxppo.core.setup import make_setup
from purejaxppo.envs import env_spec, reset_envs, resolve_env, step_envs
from purejaxppo.envs.probes import ContinuousTargetAction


@pytest.mark.parametrize(
    "variant",
    [
        {},
        # PPO-Penalty with the paper's adaptive beta instead of clipping (slow: the
        # ablations notebook's committed full-budget run shows it learning too).
        pytest.param({"objective": "kl_penalty"}, marks=pytest.mark.slow),
        # PPO-Clip with KL early stopping (a low target, so that it does stop updates).
        pytest.param({"target_kl": 0.002}, marks=pytest.mark.slow),
    ],
    ids=["clip", "kl_penalty", "target_kl"],
)
def test_cartpole_solved_over_8_seeds(variant):
    # Default settings (4 envs x 128 steps, 500k steps, 976 updates), 8 seeds at once.
    config = Config(env="CartPole-v1", **variant)
    keys = jax.random.split(jax.random.key(0), 8)
    out = jax.jit(jax.vmap(purejaxppo.train, in_axes=(None, 0)))(config, keys)
    returns = np.asarray(out.metrics["episode_return"])  # [seeds, updates]
    assert returns.shape == (8, config.num_updates)
    final = np.nanmean(returns[:, -10:], axis=1)  # per seed, last 10 updates
    assert np.all(np.isfinite(final)), final
    assert final.mean() >= 475, final
    # It learned: far above the ~20 of the random initial policy.
    assert np.nanmean(returns[:, :5]) < 100
    if "target_kl" in variant:
        assert np.asarray(out.metrics["early_stopped"]).any()  # the stop did act


def test_pendulum_trains_end_to_end():
    # 4 envs x 64 steps x 5 updates = 1280 steps: episodes (200 steps) do end.
    config = Config(
        env="Pendulum-v1",
        num_envs=4,
        num_steps=64,
        num_minibatches=2,
        update_epochs=2,
        total_timesteps=4 * 64 * 5,
        log_std_init=-0.5,
    )
    out = jax.jit(purejaxppo.train)(config, jax.random.key(0))
    m = jax.tree.map(np.asarray, out.metrics)
    for name in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_frac"):
        assert m[name].shape == (5,) and np.all(np.isfinite(m[name])), name
    assert np.all(np.isfinite(jax.tree.leaves(jax.tree.map(np.asarray, out.state.params))[0]))
    ended = m["episodes"] > 0
    assert ended.any()
    np.testing.assert_array_equal(m["episode_length"][ended], 200)  # time limit only
    assert np.all(m["episode_return"][ended] < 0)  # pendulum rewards are <= 0
    # The Gaussian log-std starts at log_std_init and is trained.
    log_std = np.asarray(out.state.params["params"]["log_std"])
    assert log_std.shape == (1,) and np.all(np.abs(log_std + 0.5) < 0.5)
    # Entropy of a 1-D Gaussian: log_std + 0.5 * (1 + log 2 pi); first update near -0.5 + 1.419
    np.testing.assert_allclose(m["entropy"][0], -0.5 + 1.4189385, atol=0.05)


def test_step_envs_clips_actions_at_env_boundary():
    # ContinuousTargetAction's terminal observation echoes the action the env received
    # (the env does not clip), so it shows what step_envs passed in. Pendulum itself
    # clips its torque internally, so it could not reveal a missing clip.
    env, params = resolve_env(ContinuousTargetAction(target=0.5))
    spec = env_spec(env, params)
    keys = jax.random.split(jax.random.key(0), 4)
    _, state = reset_envs(env, params, keys)
    action = jnp.array([[100.0], [-100.0], [0.3], [1.0]])
    res = step_envs(env, params, spec, keys, state, action)
    np.testing.assert_allclose(res.final_obs, [[1.0], [-1.0], [0.3], [1.0]])
    # reward -(clip(a) - 0.5)^2: -(0.25), -(2.25), -(0.04), -(0.25)
    np.testing.assert_allclose(res.reward, [-0.25, -2.25, -0.04, -0.25], rtol=1e-6)


def test_pendulum_out_of_range_action_acts_like_the_bound():
    env, params = resolve_env("Pendulum-v1")
    spec = env_spec(env, params)
    keys = jax.random.split(jax.random.key(0), 2)
    _, state = reset_envs(env, params, keys)
    at_bound = step_envs(env, params, spec, keys, state, jnp.full((2, 1), 2.0))
    beyond = step_envs(env, params, spec, keys, state, jnp.full((2, 1), 100.0))
    inside = step_envs(env, params, spec, keys, state, jnp.full((2, 1), 1.0))
    np.testing.assert_array_equal(beyond.obs, at_bound.obs)
    np.testing.assert_array_equal(beyond.reward, at_bound.reward)
    assert not np.array_equal(np.asarray(inside.obs), np.asarray(at_bound.obs))


def test_rollout_stores_unclipped_actions():
    # A wide Gaussian (std e^2 = 7.4) samples far outside [-1, 1]. The learner must
    # keep the sampled action (its log-prob is what the ratio uses) while the env
    # sees the clipped one.
    config = Config(
        env=ContinuousTargetAction(target=0.5),
        num_envs=4,
        num_steps=8,
        num_minibatches=1,
        total_timesteps=32,
        log_std_init=2.0,
    )
    setup = make_setup(config)
    state = purejaxppo.init(config, jax.random.key(0))
    _, traj, _ = jax.jit(lambda p, c, k: collect_rollout(setup, config, p, c, k))(
        state.params, rollout_carry(state), jax.random.key(1)
    )
    action = np.asarray(traj.action)  # [T, B, 1]
    assert action.shape == (8, 4, 1)
    assert np.abs(action).max() > 1.5  # unclipped samples are stored
    expected_reward = -((np.clip(action, -1.0, 1.0) - 0.5) ** 2)[..., 0]
    np.testing.assert_allclose(traj.reward, expected_reward, rtol=1e-5, atol=1e-6)
    dist = setup.network.apply(state.params, traj.obs, method="policy")
    np.testing.assert_allclose(traj.log_prob, dist.log_prob(traj.action), rtol=1e-5, atol=1e-5)
    # Every step ends an episode, and the pre-reset observation echoes the clipped
    # action: next_value must be V(that observation), not V(the reset observation 0).
    final_obs = jnp.clip(traj.action, -1.0, 1.0)
    expected_next = setup.network.apply(state.params, final_obs, method="value")
    np.testing.assert_allclose(traj.next_value, expected_next, rtol=1e-5, atol=1e-5)
    reset_value = setup.network.apply(state.params, jnp.zeros((1, 1)), method="value")
    assert np.abs(np.asarray(traj.next_value) - np.asarray(reset_value)).max() > 1e-3
