"""make_policy and evaluate: the same normalisation as training, batched and single
observations, determinism, episode bookkeeping; and the one point where observation
statistics change."""

from __future__ import annotations

import importlib

import jax
import numpy as np
import pytest

import purejaxppo
from purejaxppo import Config
from purejaxppo.core.rollout import collect_rollout, rollout_carry
from purejaxppo.nn.distributions import env_action

T = importlib.import_module("purejaxppo.core.train")

PENDULUM = Config(
    env="Pendulum-v1",
    num_envs=4,
    num_steps=16,
    num_minibatches=2,
    update_epochs=2,
    total_timesteps=128,
    normalize_obs=True,
    continuous_dist="tanh_gaussian",
)


@pytest.fixture(scope="module")
def pendulum_states():
    """(initial state, state after one update, the first rollout's Transition)."""
    state0 = purejaxppo.init(PENDULUM, jax.random.key(0))
    state1, _ = jax.jit(T.update)(PENDULUM, state0)
    setup = T.make_setup(PENDULUM)
    _, rollout_key, _ = jax.random.split(state0.key, 3)  # the key `update` rolls out with
    _, traj, _ = jax.jit(
        lambda s: collect_rollout(setup, PENDULUM, s.params, rollout_carry(s), rollout_key)
    )(state0)
    return state0, state1, traj


def test_obs_stats_are_the_rollouts_raw_observations(pendulum_states):
    # The first rollout normalises with empty statistics (the identity, and Pendulum's
    # observations lie well inside the +-10 clip), so its stored observations are the
    # raw ones, and one update later the statistics are exactly theirs.
    state0, state1, traj = pendulum_states
    assert float(state0.obs_stats.count) == 0
    raw = np.asarray(traj.obs).reshape(-1, 3)
    np.testing.assert_allclose(state1.obs_stats.mean, raw.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state1.obs_stats.var, raw.var(0), rtol=1e-4)
    assert float(state1.obs_stats.count) == PENDULUM.batch_size


def test_without_normalize_obs_statistics_stay_empty():
    config = PENDULUM.replace(normalize_obs=False)
    state, _ = jax.jit(T.update)(config, purejaxppo.init(config, jax.random.key(0)))
    assert float(state.obs_stats.count) == 0


def test_make_policy_normalises_like_the_rollout(pendulum_states):
    _, state1, _ = pendulum_states
    setup = T.make_setup(PENDULUM)
    _, traj, _ = jax.jit(
        lambda s, k: collect_rollout(setup, PENDULUM, s.params, rollout_carry(s), k)
    )(state1, jax.random.key(9))
    # What the rollout fed the policy at its first step, for the raw obs state1.obs:
    dist = setup.network.apply(state1.params, traj.obs[0], method="policy")
    expected = np.clip(np.asarray(env_action(dist, dist.mode())), -2.0, 2.0)
    act = purejaxppo.make_policy(PENDULUM, state1, deterministic=True)
    np.testing.assert_allclose(act(state1.obs), expected, rtol=1e-5, atol=1e-6)
    # Without the statistics the actions differ, so the check above has teeth.
    raw_dist = setup.network.apply(state1.params, state1.obs, method="policy")
    assert not np.allclose(np.asarray(env_action(raw_dist, raw_dist.mode())), expected)


def test_make_policy_single_and_batched_observations(pendulum_states):
    _, state1, _ = pendulum_states
    obs = state1.obs  # [4, 3]
    act = jax.jit(purejaxppo.make_policy(PENDULUM, state1, deterministic=True))
    batched = act(obs)
    assert batched.shape == (4, 1)
    np.testing.assert_allclose(act(obs[2]), batched[2], rtol=1e-6)

    sample = jax.jit(purejaxppo.make_policy(PENDULUM, state1))
    a, b = sample(obs, jax.random.key(1)), sample(obs, jax.random.key(1))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, sample(obs, jax.random.key(2)))
    assert np.all(np.abs(np.asarray(a)) <= 2.0)
    with pytest.raises(ValueError, match="needs a key"):
        sample(obs)


def test_make_policy_discrete_actions(small_config, small_out):
    act = purejaxppo.make_policy(small_config, small_out.state, deterministic=True)
    actions = np.asarray(act(small_out.state.obs))
    assert actions.shape == (4,) and set(actions.tolist()) <= {0, 1}
    assert int(act(small_out.state.obs[0])) == actions[0]


def test_evaluate_deterministic_for_a_key_and_counts_until_the_first_end(small_config, small_out):
    a = purejaxppo.evaluate(small_config, small_out.state, jax.random.key(3), 6)
    b = purejaxppo.evaluate(small_config, small_out.state, jax.random.key(3), 6)
    np.testing.assert_array_equal(a.returns, b.returns)
    np.testing.assert_array_equal(a.lengths, b.lengths)
    assert a.returns.shape == a.lengths.shape == (6,)
    # CartPole pays 1 per step, so each return is its episode's length. The loop runs
    # until the last episode ends: had it kept counting the others, every length would
    # equal the longest one.
    np.testing.assert_array_equal(a.returns, a.lengths.astype(np.float32))
    assert np.all((a.lengths >= 1) & (a.lengths <= 500))
    assert len(set(a.lengths.tolist())) > 1
    c = purejaxppo.evaluate(small_config, small_out.state, jax.random.key(4), 6)
    assert not np.array_equal(a.lengths, c.lengths)


def test_evaluate_stops_at_the_time_limit(pendulum_states):
    _, state1, _ = pendulum_states
    config = PENDULUM.replace(episode_length=7)
    result = purejaxppo.evaluate(config, state1, jax.random.key(0), 3)
    np.testing.assert_array_equal(result.lengths, [7, 7, 7])
    assert np.all(np.asarray(result.returns) < 0)  # Pendulum rewards are <= 0


def test_policy_functions_reject_batched_configs(small_config, small_out):
    sweep = Config.sweep(small_config, lr=[1e-3, 3e-4])
    with pytest.raises(ValueError, match="batch of 2 configs"):
        purejaxppo.make_policy(sweep, small_out.state)
    with pytest.raises(ValueError, match="num_episodes=0"):
        purejaxppo.evaluate(small_config, small_out.state, jax.random.key(0), 0)


def test_evaluate_is_vmappable_over_seeds(small_config, train_seeds_jit):
    keys = jax.random.split(jax.random.key(0), 2)
    out = train_seeds_jit.fn(small_config, keys)
    res = jax.vmap(lambda s, k: purejaxppo.evaluate(small_config, s, k, 3))(out.state, keys)
    assert res.returns.shape == (2, 3)
    one = purejaxppo.evaluate(small_config, jax.tree.map(lambda x: x[1], out.state), keys[1], 3)
    np.testing.assert_allclose(res.returns[1], one.returns)
