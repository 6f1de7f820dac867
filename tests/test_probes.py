"""Probe environments: their dynamics, and PPO learning their closed-form values and
actions with tiny budgets."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejaxppo
from purejaxppo import Config
from purejaxppo.core.setup import make_setup
from purejaxppo.envs import env_spec, reset_envs, resolve_env, step_envs
from purejaxppo.envs.probes import (
    ActionDependentReward,
    ConstantReward,
    ConstantRewardTimeLimit,
    ContinuousTargetAction,
    ObservationDependentReward,
    TwoStepDiscount,
)

GAMMA = 0.9

# 8 envs x 32 steps, 50 updates (12,800 steps). Value clipping off and a large lr so
# that the value head can travel to 10 within the budget; gamma 0.9 keeps values small.
PROBE = dict(
    num_envs=8,
    num_steps=32,
    num_minibatches=2,
    update_epochs=4,
    total_timesteps=8 * 32 * 50,
    hidden_sizes=(16, 16),
    lr=1e-2,
    lr_schedule="constant",
    clip_value_loss=False,
    gamma=GAMMA,
)


def train_probe(env, **overrides):
    config = Config(env=env, **{**PROBE, **overrides})
    out = jax.jit(purejaxppo.train)(config, jax.random.key(0))
    network = make_setup(config).network
    return config, out, network


def value_at(network, params, *obs):
    return np.asarray(network.apply(params, jnp.asarray(obs, jnp.float32), method="value"))


# ---- dynamics (no training) ---------------------------------------------------------


def rollout(env, actions, num_envs=3, seed=0):
    """Step num_envs copies with the given per-step actions; stacked StepResults."""
    env, params = resolve_env(env)
    spec = env_spec(env, params)
    keys = jax.random.split(jax.random.key(seed), (len(actions) + 1, num_envs))
    obs, state = reset_envs(env, params, keys[0])
    first_obs, results = obs, []
    for t, action in enumerate(actions):
        res = step_envs(env, params, spec, keys[t + 1], state, action)
        state = res.env_state
        results.append(jax.tree.map(np.asarray, res._replace(env_state=None)))
    return np.asarray(first_obs), results


def test_constant_reward_time_limit_truncates_at_n():
    env = ConstantRewardTimeLimit(max_steps=4)
    _, res = rollout(env, [jnp.zeros(3, jnp.int32)] * 9)
    truncated = np.stack([r.truncated[0] for r in res])
    # Episodes of 4 steps: steps 4 and 8 (1-based) are truncated, never terminated.
    np.testing.assert_array_equal(np.flatnonzero(truncated), [3, 7])
    assert not any(r.terminated.any() for r in res)
    assert all(np.all(r.reward == 1.0) and np.all(r.obs == 0.0) for r in res)


def test_constant_reward_time_limit_bug_mode_terminates_instead():
    env = ConstantRewardTimeLimit(max_steps=4, terminate_at_limit=True)
    _, res = rollout(env, [jnp.zeros(3, jnp.int32)] * 4)
    assert [bool(r.terminated[0]) for r in res] == [False, False, False, True]
    assert not any(r.truncated.any() for r in res)


def test_one_step_probes_terminate_every_step():
    for env in (ConstantReward(), ObservationDependentReward(), ActionDependentReward()):
        _, res = rollout(env, [jnp.zeros(3, jnp.int32)] * 3)
        for r in res:
            assert r.terminated.all() and not r.truncated.any(), env


def test_observation_dependent_reward_pays_the_observation():
    obs, res = rollout(ObservationDependentReward(), [jnp.zeros(64, jnp.int32)], num_envs=64)
    assert set(np.unique(obs)) == {-1.0, 1.0}
    np.testing.assert_array_equal(res[0].reward, obs[:, 0])


def test_two_step_discount_dynamics():
    obs, res = rollout(TwoStepDiscount(), [jnp.zeros(2, jnp.int32)] * 4, num_envs=2)
    np.testing.assert_array_equal(obs, np.zeros((2, 1)))
    assert [float(r.reward[0]) for r in res] == [0.0, 1.0, 0.0, 1.0]
    assert [bool(r.terminated[0]) for r in res] == [False, True, False, True]
    assert [float(r.obs[0, 0]) for r in res] == [1.0, 0.0, 1.0, 0.0]


def test_action_dependent_reward_pays_the_hot_index():
    obs, res = rollout(ActionDependentReward(), [jnp.array([0, 1] * 32)], num_envs=64)
    hot = obs.argmax(1)
    assert set(hot) == {0, 1} and np.all(obs.sum(1) == 1.0)
    np.testing.assert_array_equal(res[0].reward, (hot == np.array([0, 1] * 32)).astype(float))


def test_continuous_target_action_reward_and_echo():
    # Inside the bounds, no clipping: reward -(a - 0.5)^2 and the final obs echoes a.
    _, res = rollout(ContinuousTargetAction(), [jnp.array([[0.5], [0.0], [-1.0]])])
    np.testing.assert_allclose(res[0].reward, [0.0, -0.25, -2.25])
    np.testing.assert_allclose(res[0].final_obs, [[0.5], [0.0], [-1.0]])


def test_probe_instances_compare_by_value():
    assert ConstantRewardTimeLimit() == ConstantRewardTimeLimit(16)
    assert hash(ConstantRewardTimeLimit()) == hash(ConstantRewardTimeLimit(16))
    assert ConstantRewardTimeLimit(16) != ConstantRewardTimeLimit(8)
    assert ConstantRewardTimeLimit() != ConstantRewardTimeLimit(terminate_at_limit=True)
    assert ConstantReward() == ConstantReward() and ConstantReward() != TwoStepDiscount()
    assert "max_steps=16" in repr(ConstantRewardTimeLimit())
    # Equal configs, so a fresh instance reuses a compiled program.
    assert Config(env=ConstantReward()).env == Config(env=ConstantReward()).env


# ---- learning -----------------------------------------------------------------------


def test_constant_reward_value_is_one():
    _, out, net = train_probe(ConstantReward())
    np.testing.assert_allclose(value_at(net, out.state.params, [0.0]), [1.0], atol=0.05)


def test_observation_dependent_value():
    _, out, net = train_probe(ObservationDependentReward())
    np.testing.assert_allclose(value_at(net, out.state.params, [1.0], [-1.0]), [1, -1], atol=0.1)


def test_two_step_discount_values():
    # V(first obs) = 0 + gamma * 1 = 0.9; V(second obs) = 1
    _, out, net = train_probe(TwoStepDiscount())
    np.testing.assert_allclose(
        value_at(net, out.state.params, [0.0], [1.0]), [GAMMA, 1.0], atol=0.05
    )


def test_action_dependent_reward_greedy_action():
    _, out, net = train_probe(ActionDependentReward())
    obs = jnp.eye(2)
    dist = net.apply(out.state.params, obs, method="policy")
    np.testing.assert_array_equal(dist.mode(), [0, 1])
    probs = np.asarray(jax.nn.softmax(dist.logits))
    assert probs[0, 0] > 0.9 and probs[1, 1] > 0.9
    # Mean episode return (1 for the right action) in the last updates.
    assert np.nanmean(out.metrics["episode_return"][-5:]) > 0.9


def test_continuous_target_action_mode():
    _, out, net = train_probe(ContinuousTargetAction(target=0.5))
    dist = net.apply(out.state.params, jnp.zeros((1, 1)), method="policy")
    np.testing.assert_allclose(dist.mode(), [[0.5]], atol=0.1)


# Truncated-return average the value would fit if the time limit were a termination:
#   (1/N) sum_{m=1..N} (1 - gamma^m) / (1 - gamma), N = 16, gamma = 0.9
#   = 10 * (1 - (1/16) * 0.9 * (1 - 0.9^16) / 0.1) = 10 * (1 - 7.3323/16) = 5.417
TRUNCATED_AVERAGE = float(np.mean([(1 - GAMMA**m) / (1 - GAMMA) for m in range(1, 17)]))


def test_time_limit_value_bootstraps_to_infinite_horizon():
    assert TRUNCATED_AVERAGE == pytest.approx(5.417, abs=1e-3)
    _, out, net = train_probe(ConstantRewardTimeLimit(max_steps=16))
    value = float(value_at(net, out.state.params, [0.0])[0])
    # 1 / (1 - 0.9) = 10
    assert value == pytest.approx(1.0 / (1.0 - GAMMA), rel=0.1)
    assert abs(value - TRUNCATED_AVERAGE) > 3.0


def test_time_limit_as_termination_learns_truncated_average():
    # The same training with the limit reported as a termination (the classic bug)
    # lands near the truncated average, far from 10: the probe can tell them apart.
    _, out, net = train_probe(ConstantRewardTimeLimit(max_steps=16, terminate_at_limit=True))
    value = float(value_at(net, out.state.params, [0.0])[0])
    assert value == pytest.approx(TRUNCATED_AVERAGE, rel=0.15)
    assert value < 7.5
