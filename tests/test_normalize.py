"""Running statistics and reward scaling against numpy references."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo import Config
from purejaxppo.core import normalize as norm
from purejaxppo.core.rollout import scale_rewards


def test_update_equals_numpy_mean_var():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(50, 8, 5)).astype(np.float32)
    stats = norm.update(norm.init_stats((5,)), jnp.asarray(x))
    flat = x.reshape(-1, 5)
    np.testing.assert_allclose(stats.mean, flat.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats.var, flat.var(0), rtol=1e-4)
    assert float(stats.count) == 400


def test_merging_two_batches_equals_stats_of_their_union():
    rng = np.random.default_rng(1)
    # Very different batches (and sizes) so a wrong merge formula shows.
    a = rng.normal(-5.0, 0.5, size=(37, 3)).astype(np.float32)
    b = rng.normal(10.0, 4.0, size=(211, 3)).astype(np.float32)
    stats = norm.update(norm.update(norm.init_stats((3,)), a), b)
    both = np.concatenate([a, b])
    np.testing.assert_allclose(stats.mean, both.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats.var, both.var(0), rtol=1e-4)
    assert float(stats.count) == 248
    # Merging summaries directly gives the same as folding in raw batches.
    merged = norm.merge(norm.batch_moments(a, 1), norm.batch_moments(b, 1))
    np.testing.assert_allclose(merged.mean, stats.mean, rtol=1e-6)
    np.testing.assert_allclose(merged.var, stats.var, rtol=1e-5)


def test_empty_stats_normalise_as_identity_and_clip():
    stats = norm.init_stats((2,))
    x = jnp.array([[0.5, -20.0]])
    np.testing.assert_allclose(norm.normalize(stats, x), x, rtol=1e-6)
    np.testing.assert_allclose(norm.normalize(stats, x, clip=10.0), [[0.5, -10.0]], rtol=1e-6)


def test_merge_across_axis_name_is_the_global_batch():
    # 4 "devices" with 6 rows each: statistics merged with psum over the mapped axis
    # equal numpy's over all 24 rows, on every device.
    x = np.random.default_rng(2).normal(size=(4, 6, 3)).astype(np.float32)
    x[1] += 7.0  # one shard far from the others
    stats = jax.vmap(
        lambda xs: norm.update(norm.init_stats((3,)), xs, axis_name="dp"), axis_name="dp"
    )(jnp.asarray(x))
    flat = x.reshape(-1, 3)
    for d in range(4):
        np.testing.assert_allclose(stats.mean[d], flat.mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(stats.var[d], flat.var(0), rtol=1e-4)
        assert float(stats.count[d]) == 24


def test_reward_scaling_matches_numpy_reference():
    """Discounted return per env, reset at episode ends; rewards divided by the running
    std of all returns seen so far (including this step's), then clipped."""
    gamma, clip = 0.9, 3.0
    config = Config(normalize_reward=True, gamma=gamma, reward_clip=clip)
    rng = np.random.default_rng(3)
    steps, envs = 12, 3
    rewards = rng.normal(1.0, 2.0, size=(steps, envs)).astype(np.float32)
    dones = rng.random((steps, envs)) < 0.25

    step = jax.jit(lambda s, r, rew, d: scale_rewards(config, s, r, rew, d))
    stats, ret = norm.init_stats(()), jnp.zeros(envs)
    ours = []
    for t in range(steps):
        stats, ret, scaled = step(stats, ret, rewards[t], dones[t])
        ours.append(np.asarray(scaled))

    ref_ret, seen, expected = np.zeros(envs), [], []
    for t in range(steps):
        ref_ret = gamma * ref_ret + rewards[t]
        seen.extend(ref_ret.tolist())
        expected.append(np.clip(rewards[t] / np.sqrt(np.var(seen) + 1e-8), -clip, clip))
        ref_ret = np.where(dones[t], 0.0, ref_ret)
    np.testing.assert_allclose(np.array(ours), np.array(expected), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats.var, np.var(seen), rtol=1e-4)
    np.testing.assert_allclose(stats.mean, np.mean(seen), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ret, np.where(dones[-1], 0.0, ref_ret), rtol=1e-5)


@pytest.mark.parametrize("on", [False, True])
def test_reward_scale_multiplies_learner_rewards(on):
    config = Config(normalize_reward=on, reward_scale=10.0)
    reward = jnp.array([1.0, -2.0])
    stats, _, scaled = scale_rewards(
        config, norm.init_stats(()), jnp.zeros(2), reward, jnp.zeros(2, bool)
    )
    base = norm.scale(stats, reward, config.reward_clip) if on else reward
    np.testing.assert_allclose(scaled, 10.0 * np.asarray(base), rtol=1e-6)
