"""core/advantages.py: compute_gae against a plain-Python reference and hand-computed
cases, and explained_variance."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo import compute_gae, explained_variance


def reference_gae(reward, value, next_value, terminated, truncated, gamma, lam):
    """Textbook GAE as a Python loop over time and batch, in float64.

    A truncation bootstraps from next_value (the true pre-reset observation) but
    stops the recursion; a termination does neither.
    """
    T, B = reward.shape
    adv = np.zeros((T, B))
    for b in range(B):
        running = 0.0
        for t in reversed(range(T)):
            term = bool(terminated[t, b])
            done = term or bool(truncated[t, b])
            bootstrap = 0.0 if term else gamma * next_value[t, b]
            delta = reward[t, b] + bootstrap - value[t, b]
            running = delta + (0.0 if done else gamma * lam * running)
            adv[t, b] = running
    return adv, adv + value


def random_rollout(seed: int, shape=(37, 5)):
    rng = np.random.default_rng(seed)
    reward = rng.normal(size=shape).astype(np.float32)
    value = rng.normal(size=shape).astype(np.float32)
    next_value = rng.normal(size=shape).astype(np.float32)
    # About 20% terminated, 20% truncated; some steps carry both flags.
    terminated = rng.random(shape) < 0.2
    truncated = rng.random(shape) < 0.2
    return reward, value, next_value, terminated, truncated


def gae(reward, value, next_value, terminated, truncated, gamma, lam):
    adv, ret = compute_gae(
        jnp.asarray(reward),
        jnp.asarray(value),
        jnp.asarray(next_value),
        jnp.asarray(terminated),
        jnp.asarray(truncated),
        gamma,
        lam,
    )
    return np.asarray(adv), np.asarray(ret)


@pytest.mark.parametrize(
    ("seed", "gamma", "lam"), [(0, 0.99, 0.95), (1, 0.9, 0.5), (2, 1.0, 1.0), (3, 0.97, 0.0)]
)
def test_matches_python_loop_on_random_data(seed, gamma, lam):
    data = random_rollout(seed)
    _, _, _, terminated, truncated = data
    # The random draw must actually contain every case it claims to test.
    assert terminated.any() and truncated.any()
    assert (terminated & truncated).any()
    assert (truncated & ~terminated).any()

    adv, ret = gae(*data, gamma, lam)
    ref_adv, ref_ret = reference_gae(*data, gamma, lam)
    np.testing.assert_allclose(adv, ref_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ret, ref_ret, rtol=1e-5, atol=1e-5)
    assert adv.dtype == np.float32


def test_returns_are_advantages_plus_value():
    reward, value, next_value, terminated, truncated = random_rollout(4)
    adv, ret = gae(reward, value, next_value, terminated, truncated, 0.99, 0.95)
    np.testing.assert_allclose(ret, adv + value, rtol=1e-6, atol=1e-6)


def test_trailing_batch_shape():
    reward, value, next_value, terminated, truncated = random_rollout(5, shape=(11, 2, 3))
    adv, ret = gae(reward, value, next_value, terminated, truncated, 0.9, 0.8)
    assert adv.shape == ret.shape == (11, 2, 3)
    flat = [x.reshape(11, 6) for x in (reward, value, next_value, terminated, truncated)]
    ref_adv, ref_ret = reference_gae(*flat, 0.9, 0.8)
    np.testing.assert_allclose(adv.reshape(11, 6), ref_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ret.reshape(11, 6), ref_ret, rtol=1e-5, atol=1e-5)


def column(*xs):
    return np.asarray(xs, np.float32)[:, None]  # [T, B=1]


def flags(*xs):
    return np.asarray(xs, bool)[:, None]


def test_hand_computed_no_episode_end_bootstraps_at_rollout_end():
    # gamma = 0.5, lambda = 0.5 (gamma * lambda = 0.25); no episode ends.
    # t=1: delta = 1 + 0.5*4 - 2 = 1;                       A1 = 1
    # t=0: delta = 2 + 0.5*2 - 1 = 2;  A0 = 2 + 0.25*A1 =   2.25
    adv, ret = gae(column(2, 1), column(1, 2), column(2, 4), flags(0, 0), flags(0, 0), 0.5, 0.5)
    np.testing.assert_allclose(adv[:, 0], [2.25, 1.0], rtol=1e-6)
    np.testing.assert_allclose(ret[:, 0], [3.25, 3.0], rtol=1e-6)


def test_hand_computed_truncation_bootstraps_termination_does_not():
    # gamma = 0.5, lambda = 0.5; reward [1, 2, 3], value [1, 1, 1],
    # next_value [2, 4, 8]; step 1 truncated, step 2 terminated.
    # t=2 (terminated): delta = 3 + 0 (no bootstrap) - 1 = 2;          A2 = 2
    # t=1 (truncated):  delta = 2 + 0.5*4 (bootstrap) - 1 = 3;
    #                   recursion stops:                                 A1 = 3
    # t=0:              delta = 1 + 0.5*2 - 1 = 1;  A0 = 1 + 0.25*3 =   1.75
    # returns = A + value = [2.75, 4, 3]
    adv, ret = gae(
        column(1, 2, 3), column(1, 1, 1), column(2, 4, 8), flags(0, 0, 1), flags(0, 1, 0), 0.5, 0.5
    )
    np.testing.assert_allclose(adv[:, 0], [1.75, 3.0, 2.0], rtol=1e-6)
    np.testing.assert_allclose(ret[:, 0], [2.75, 4.0, 3.0], rtol=1e-6)


def test_truncation_bootstrap_uses_next_value():
    # One truncated step, gamma = 0.9: A = r + 0.9 * next_value - value
    #   next_value 0  -> 1 + 0   - 0.5 = 0.5
    #   next_value 10 -> 1 + 9.0 - 0.5 = 9.5   (would be 0.5 if treated as terminal)
    for nv, expected in [(0.0, 0.5), (10.0, 9.5)]:
        adv, _ = gae(column(1), column(0.5), column(nv), flags(0), flags(1), 0.9, 0.95)
        np.testing.assert_allclose(adv[0, 0], expected, rtol=1e-6)


def test_termination_ignores_next_value():
    # One terminated step: A = r - value = 1 - 0.5 = 0.5 whatever next_value is,
    # also when truncated is set too (termination wins).
    for nv in (0.0, 10.0, -100.0):
        for trunc in (0, 1):
            adv, _ = gae(column(1), column(0.5), column(nv), flags(1), flags(trunc), 0.9, 0.95)
            np.testing.assert_allclose(adv[0, 0], 0.5, rtol=1e-6)


def test_episode_end_stops_the_recursion():
    # gamma = lambda = 1. Step 0 ends an episode (either way), step 1 has a huge
    # advantage that must not leak back into step 0.
    # t=1: A1 = 100 + 0 - 0 = 100
    # t=0: A0 = 1 + 1*next_value(=0 here) - 0 = 1 (recursion cut, no + A1)
    for term, trunc in [(1, 0), (0, 1), (1, 1)]:
        adv, _ = gae(
            column(1, 100), column(0, 0), column(0, 0), flags(term, 0), flags(trunc, 0), 1.0, 1.0
        )
        np.testing.assert_allclose(adv[:, 0], [1.0, 100.0], rtol=1e-6)


def test_traced_gamma_and_lambda_arrays():
    data = random_rollout(6, shape=(8, 3))
    a, _ = gae(*data, np.float32(0.9), np.float32(0.7))
    b, _ = gae(*data, 0.9, 0.7)
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_explained_variance_by_hand():
    target = jnp.array([1.0, 2.0, 3.0, 4.0])  # var = 1.25
    np.testing.assert_allclose(explained_variance(target, target), 1.0)
    # Predicting 0: 1 - var(target) / var(target) = 0 (a constant offset is not penalised)
    np.testing.assert_allclose(explained_variance(jnp.zeros(4), target), 0.0, atol=1e-7)
    # Residual [1, -1, 1, -1] has var 1: 1 - 1 / 1.25 = 0.2
    pred = target - jnp.array([1.0, -1.0, 1.0, -1.0])
    np.testing.assert_allclose(explained_variance(pred, target), 0.2, rtol=1e-6)
    assert np.isnan(explained_variance(jnp.zeros(3), jnp.ones(3)))  # constant target


def test_bootstrap_truncation_off_treats_time_limits_as_terminations():
    """Config(bootstrap_truncation=False): the training batch's advantages are the
    reference GAE with every truncation counted as a termination (no bootstrap from the
    final observation), as the older baselines compute them; the default bootstraps."""
    from purejaxppo import Config
    from purejaxppo.core.train import training_batch
    from purejaxppo.core.types import Transition

    reward, value, next_value, terminated, truncated = random_rollout(5, shape=(16, 3))
    traj = Transition(
        obs=jnp.zeros((16, 3, 4)),
        action=jnp.zeros((16, 3), jnp.int32),
        log_prob=jnp.zeros((16, 3)),
        value=jnp.asarray(value),
        reward=jnp.asarray(reward),
        terminated=jnp.asarray(terminated),
        truncated=jnp.asarray(truncated),
        next_value=jnp.asarray(next_value),
    )
    config = Config(advantage_norm="off", num_envs=3, num_steps=16)
    for bootstrap, term in ((True, terminated), (False, terminated | truncated)):
        batch = training_batch(config.replace(bootstrap_truncation=bootstrap), traj)
        ref_adv, ref_ret = reference_gae(
            reward, value, next_value, term, truncated, config.gamma, config.gae_lambda
        )
        np.testing.assert_allclose(np.asarray(batch.advantages), ref_adv.reshape(-1), atol=1e-5)
        np.testing.assert_allclose(np.asarray(batch.returns), ref_ret.reshape(-1), atol=1e-5)
    assert (truncated & ~terminated).any()  # the two cases differ on this draw
