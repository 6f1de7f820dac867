"""The dict-, pixel- and MultiDiscrete-observation probes and the MultiDiscrete space:
dynamics only (jit + vmap through gymnax's base `step`), no training."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import spaces

from purejaxppo.envs.probes import (
    MaskedActions,
    MultiDiscreteTarget,
    PixelActionReward,
    PrivilegedReward,
    TreeProbeState,
)
from purejaxppo.envs.spaces import MultiDiscrete

NUM_ENVS = 8


def reset_batch(env, num_envs=NUM_ENVS, seed=0):
    params = env.default_params
    keys = jax.random.split(jax.random.key(seed), num_envs)
    obs, state = jax.jit(jax.vmap(env.reset_env, in_axes=(0, None)))(keys, params)
    return obs, state, params


def step_batch(env, state, actions, params, seed=1):
    """gymnax's base `step` (auto-reset, final_observation), jitted over a batch."""
    keys = jax.random.split(jax.random.key(seed), actions.shape[0])
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    return step(keys, state, actions, params)


def check_one_step(terminated, truncated, info):
    assert np.asarray(terminated).all()
    assert not np.asarray(truncated).any()
    assert set(info) == {"terminated", "truncated", "final_observation"}


def check_equality(make, other):
    a, b = make(), make()
    assert a == b and hash(a) == hash(b)
    assert a != other
    assert repr(a) == repr(b)
    assert repr(a).startswith(type(a).__name__ + "(")


# ---- MultiDiscrete -------------------------------------------------------------------


def test_multidiscrete_attributes_equality_repr():
    space = MultiDiscrete([3, np.int64(4), 5])
    assert space.nvec == (3, 4, 5) and all(type(n) is int for n in space.nvec)
    assert space.shape == (3,)
    assert space.dtype == jnp.int32
    assert space == MultiDiscrete((3, 4, 5)) and hash(space) == hash(MultiDiscrete((3, 4, 5)))
    assert space != MultiDiscrete((3, 4)) and space != spaces.Discrete(3)
    assert repr(space) == "MultiDiscrete(nvec=(3, 4, 5))"


@pytest.mark.parametrize("nvec", [(), [], (0,), (3, -1), (2.0,), (2, 1.5), (True,), "ab", 3, None])
def test_multidiscrete_validation(nvec):
    with pytest.raises(ValueError, match="nvec") as error:
        MultiDiscrete(nvec)
    assert repr(nvec) in str(error.value)


def test_multidiscrete_sample_and_contains():
    space = MultiDiscrete((2, 3, 7))
    samples = jax.jit(jax.vmap(space.sample))(jax.random.split(jax.random.key(0), 2000))
    assert samples.shape == (2000, 3) and samples.dtype == jnp.int32
    samples = np.asarray(samples)
    for k, n in enumerate(space.nvec):
        assert set(samples[:, k].tolist()) == set(range(n))  # every value drawn, no other
    assert bool(jax.vmap(space.contains)(jnp.asarray(samples)).all())
    assert bool(space.contains(jnp.array([1, 2, 6])))
    assert bool(space.contains(jnp.array([1.0, 0.0, 3.0])))
    assert not bool(space.contains(jnp.array([2, 0, 0])))
    assert not bool(space.contains(jnp.array([0, 0, 7])))
    assert not bool(space.contains(jnp.array([-1, 0, 0])))
    assert not bool(space.contains(jnp.array([0.5, 0.0, 0.0])))
    assert not bool(space.contains(jnp.array([0, 0])))  # wrong shape
    assert bool(jax.jit(space.contains)(jnp.array([1, 1, 1])))


# ---- MaskedActions -------------------------------------------------------------------


def test_masked_actions_observation_and_mask_constraints():
    env = MaskedActions()
    assert env.num_actions == 6 and env.action_space().n == 6
    space = env.observation_space(env.default_params)
    assert isinstance(space, spaces.Dict)
    assert space.spaces["action_mask"].dtype == jnp.bool_
    obs, state, _ = reset_batch(env, num_envs=256)
    assert isinstance(state, TreeProbeState)
    assert set(obs) == {"observation", "action_mask"}
    assert obs["observation"].shape == (256, 6) and obs["observation"].dtype == jnp.float32
    assert obs["action_mask"].shape == (256, 6) and obs["action_mask"].dtype == jnp.bool_
    mask = np.asarray(obs["action_mask"])
    np.testing.assert_array_equal(np.asarray(obs["observation"]), mask.astype(np.float32))
    legal = mask.sum(axis=1)
    assert (legal >= 2).all() and (legal <= 5).all()
    assert len({tuple(row) for row in mask.tolist()}) > 20  # the masks vary


def test_masked_actions_rewards():
    env = MaskedActions()
    obs, state, params = reset_batch(env)
    mask = np.asarray(obs["action_mask"])
    best = np.asarray(jax.vmap(env.best_action)(obs))
    np.testing.assert_array_equal(best, [np.flatnonzero(row).max() for row in mask])
    assert int(env.best_action(jax.tree.map(lambda x: x[0], obs))) == best[0]
    np.testing.assert_array_equal(np.asarray(env.best_action(obs)), best)  # batched too

    _, _, reward, terminated, truncated, info = step_batch(env, state, jnp.asarray(best), params)
    check_one_step(terminated, truncated, info)
    assert reward.dtype == jnp.float32 and reward.shape == (NUM_ENVS,)
    np.testing.assert_allclose(np.asarray(reward), (best + 1) / 6)
    assert set(info["final_observation"]) == {"observation", "action_mask"}

    illegal = np.array([np.flatnonzero(~row)[0] for row in mask])
    _, _, reward, *_ = step_batch(env, state, jnp.asarray(illegal), params)
    np.testing.assert_allclose(np.asarray(reward), 10.0)

    # every legal action pays (a + 1) / n, at most the best one
    for a in range(6):
        _, _, reward, *_ = step_batch(env, state, jnp.full(NUM_ENVS, a), params)
        expected = np.where(mask[:, a], (a + 1) / 6, 10.0)
        np.testing.assert_allclose(np.asarray(reward), expected, rtol=1e-6)


def test_masked_actions_equality_and_validation():
    check_equality(lambda: MaskedActions(4), MaskedActions(5))
    assert MaskedActions() == MaskedActions(num_actions=6)
    assert repr(MaskedActions(4)) == "MaskedActions(num_actions=4)"
    with pytest.raises(ValueError, match="num_actions"):
        MaskedActions(2)


# ---- MultiDiscreteTarget -------------------------------------------------------------


def test_multidiscrete_target_rewards():
    env = MultiDiscreteTarget()
    assert env.nvec == (3, 4, 5) and env.targets == (1, 2, 3)
    assert env.action_space() == MultiDiscrete((3, 4, 5))
    obs, state, params = reset_batch(env)
    assert obs.shape == (NUM_ENVS, 1) and obs.dtype == jnp.float32
    assert not np.asarray(obs).any()

    target = jnp.tile(jnp.asarray(env.targets, jnp.int32), (NUM_ENVS, 1))
    _, _, reward, terminated, truncated, info = step_batch(env, state, target, params)
    check_one_step(terminated, truncated, info)
    assert reward.dtype == jnp.float32 and reward.shape == (NUM_ENVS,)
    np.testing.assert_allclose(np.asarray(reward), 1.0)

    for k, n in enumerate(env.nvec):  # one wrong sub-action: (K - 1) / K
        wrong = target.at[:, k].set((env.targets[k] + 1) % n)
        _, _, reward, *_ = step_batch(env, state, wrong, params)
        np.testing.assert_allclose(np.asarray(reward), 2 / 3, rtol=1e-6)

    actions = jax.vmap(env.action_space().sample)(jax.random.split(jax.random.key(3), NUM_ENVS))
    _, _, reward, *_ = step_batch(env, state, actions, params)
    expected = (np.asarray(actions) == np.asarray(env.targets)).mean(axis=1)
    np.testing.assert_allclose(np.asarray(reward), expected, rtol=1e-6)


def test_multidiscrete_target_equality_and_validation():
    check_equality(lambda: MultiDiscreteTarget((2, 2)), MultiDiscreteTarget((2, 3)))
    assert MultiDiscreteTarget([3, 4, 5]) == MultiDiscreteTarget()
    assert repr(MultiDiscreteTarget()) == "MultiDiscreteTarget(nvec=(3, 4, 5))"
    assert MultiDiscreteTarget((1, 2)).targets == (0, 0)
    with pytest.raises(ValueError, match="nvec"):
        MultiDiscreteTarget((3, 0))


# ---- PrivilegedReward ----------------------------------------------------------------


def test_privileged_reward():
    env = PrivilegedReward()
    assert env.action_space().n == 2
    assert set(env.observation_space(env.default_params).spaces) == {"state", "privileged_state"}
    obs, state, params = reset_batch(env, num_envs=64)
    assert obs["state"].shape == (64, 2) and obs["state"].dtype == jnp.float32
    assert obs["privileged_state"].shape == (64, 1)
    assert obs["privileged_state"].dtype == jnp.float32
    sign = np.asarray(obs["privileged_state"])[:, 0]
    assert set(sign.tolist()) == {-1.0, 1.0}
    assert np.asarray(obs["state"]).std() > 0.3  # noise, not a constant

    for a in (0, 1):
        _, _, reward, terminated, truncated, info = step_batch(env, state, jnp.full(64, a), params)
        check_one_step(terminated, truncated, info)
        np.testing.assert_array_equal(np.asarray(reward), sign)
    check_equality(PrivilegedReward, MaskedActions())
    assert repr(PrivilegedReward()) == "PrivilegedReward()"


# ---- PixelActionReward ---------------------------------------------------------------


@pytest.mark.parametrize(("size", "channels", "num_actions"), [(10, 1, 2), (11, 3, 4)])
def test_pixel_action_reward(size, channels, num_actions):
    env = PixelActionReward(size, channels, num_actions)
    space = env.observation_space(env.default_params)
    assert isinstance(space, spaces.Box)
    assert space.shape == (size, size, channels) and space.dtype == jnp.uint8
    obs, state, params = reset_batch(env, num_envs=64)
    assert obs.shape == (64, size, size, channels) and obs.dtype == jnp.uint8
    images = np.asarray(obs)
    assert set(np.unique(images).tolist()) == {0, 255}

    stripes = np.asarray(jax.vmap(env.stripe_of)(obs))
    assert set(stripes.tolist()) == set(range(num_actions))
    rows = set()
    for image, k in zip(images, stripes, strict=True):
        low, high = k * size // num_actions, (k + 1) * size // num_actions
        lit = image.any(axis=2)
        assert not lit[:, :low].any() and not lit[:, high:].any()  # 255 only in the stripe
        assert lit[:, low:high].any()
        rows.add(int(np.flatnonzero(lit.any(axis=1))[0]))
        assert (image[lit] == 255).all()
    assert len(rows) > 1  # the block's row varies

    _, _, reward, terminated, truncated, info = step_batch(env, state, jnp.asarray(stripes), params)
    check_one_step(terminated, truncated, info)
    assert reward.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(reward), 1.0)
    assert info["final_observation"].dtype == jnp.uint8
    wrong = (stripes + 1) % num_actions
    _, _, reward, *_ = step_batch(env, state, jnp.asarray(wrong), params)
    np.testing.assert_allclose(np.asarray(reward), 0.0)


def test_pixel_action_reward_equality_and_validation():
    check_equality(lambda: PixelActionReward(8, 3, 4), PixelActionReward(8, 1, 4))
    assert PixelActionReward() == PixelActionReward(size=10, channels=1, num_actions=2)
    assert repr(PixelActionReward()) == "PixelActionReward(size=10, channels=1, num_actions=2)"
    with pytest.raises(ValueError, match="size"):
        PixelActionReward(size=3, num_actions=4)
