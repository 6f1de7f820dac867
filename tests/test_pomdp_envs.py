"""The partially observed envs for recurrent policies, MemoryCue (a probe) and
StatelessCartPole: dynamics, equality and id resolution only, no training."""

from __future__ import annotations

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import spaces

import purejaxppo
from purejaxppo import Config
from purejaxppo.envs import StatelessCartPole, env_spec, resolve_env
from purejaxppo.envs.probes import MemoryCue, MemoryCueState, ProbeParams
from purejaxppo.envs.registry import OWN_ENVS, PROBE_ENVS, check_env_id

POSITIONS = jnp.array([0, 2])  # x and theta in CartPole's [x, x_dot, theta, theta_dot]


def run_episodes(env, params, actions, num_envs, seed=0):
    """Reset `num_envs` envs, then step them with gymnax's base `step` (auto-reset,
    final_observation) through `actions` [T, num_envs] in a jitted scan: the reset
    observation and state, and the stacked (obs, state, reward, terminated, truncated,
    info) of every step."""

    def run(key, actions):
        key_reset, key_steps = jax.random.split(key)
        reset_keys = jax.random.split(key_reset, num_envs)
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(reset_keys, params)
        step_keys = jax.random.split(key_steps, (actions.shape[0], num_envs))

        def one(state, inputs):
            keys, action = inputs
            out = jax.vmap(env.step, in_axes=(0, 0, 0, None))(keys, state, action, params)
            return out[1], out

        _, steps = jax.lax.scan(one, state, (step_keys, actions))
        return obs, state, steps

    return jax.jit(run)(jax.random.key(seed), actions)


# ---- MemoryCue -----------------------------------------------------------------------


@pytest.mark.parametrize(("num_cues", "length"), [(2, 4), (3, 2), (4, 5)])
def test_memory_cue_dynamics(num_cues, length):
    env = MemoryCue(num_cues, length)
    params = env.default_params
    assert isinstance(env.action_space(params), spaces.Discrete)
    assert env.action_space(params).n == num_cues
    space = env.observation_space(params)
    assert space.shape == (num_cues + 1,) and space.dtype == jnp.float32

    num_envs = 64
    obs, state, _ = run_episodes(env, params, jnp.zeros((0, num_envs), jnp.int32), num_envs)
    assert isinstance(state, MemoryCueState)
    cue = np.asarray(state.cue)
    assert set(cue.tolist()) == set(range(num_cues))  # every cue drawn
    # Step 0 shows the cue, with the flag off.
    np.testing.assert_array_equal(np.asarray(obs)[:, :num_cues], np.eye(num_cues)[cue])
    assert not np.asarray(obs)[:, -1].any()

    # The same seed resets to the same cues. Half the envs answer right at the last
    # step, half wrong; before it every action is wrong.
    answer_right = np.arange(num_envs) % 2 == 0
    answer = np.where(answer_right, cue, (cue + 1) % num_cues)
    wrong = (cue + 1) % num_cues
    first = np.stack([wrong] * (length - 1) + [answer])
    _, _, (obs_t, state_t, reward, terminated, truncated, info) = run_episodes(
        env, params, jnp.asarray(first), num_envs
    )
    obs_t, reward = np.asarray(obs_t), np.asarray(reward)
    terminated, truncated = np.asarray(terminated), np.asarray(truncated)
    final = np.asarray(info["final_observation"])
    assert obs_t.dtype == np.float32 and reward.dtype == np.float32
    # Steps 1 .. length - 2 see zeros; the last step (time length - 1) sees only the flag.
    flag = np.zeros(num_cues + 1, np.float32)
    flag[-1] = 1.0
    for t in range(length - 1):  # obs after step t is the obs at time t + 1
        expected = flag if t + 1 == length - 1 else np.zeros_like(flag)
        np.testing.assert_array_equal(obs_t[t], np.broadcast_to(expected, obs_t[t].shape))
        np.testing.assert_array_equal(final[t], obs_t[t])
    assert not reward[:-1].any() and not terminated[:-1].any()
    np.testing.assert_array_equal(reward[-1], answer_right.astype(np.float32))
    assert terminated[-1].all() and not truncated.any()
    # The auto-reset after the last step starts a new episode: a fresh cue at step 0.
    new_cue = np.asarray(state_t.cue[-1])
    np.testing.assert_array_equal(obs_t[-1][:, :num_cues], np.eye(num_cues)[new_cue])
    assert np.asarray(state_t.time[-1] == 0).all()


def test_memory_cue_pays_one_per_episode_only_with_the_cue_remembered():
    env = MemoryCue(3, 4)
    params = env.default_params
    num_envs, episodes = 32, 3

    def run(key):
        """Act with the remembered cue (read off each episode's first observation)."""
        reset_keys = jax.random.split(key, num_envs)
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(reset_keys, params)
        step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

        def one(carry, key):
            obs, state, memory = carry
            seen = obs[:, :-1].sum(1) > 0
            memory = jnp.where(seen, jnp.argmax(obs[:, :-1], 1), memory)
            obs, state, reward, terminated, truncated, _ = step(
                jax.random.split(key, num_envs), state, memory, params
            )
            return (obs, state, memory), (reward, terminated, truncated)

        memory = jnp.zeros(num_envs, jnp.int32)
        keys = jax.random.split(key, 4 * episodes)
        return jax.lax.scan(one, (obs, state, memory), keys)[1]

    reward, terminated, truncated = map(np.asarray, jax.jit(run)(jax.random.key(5)))
    np.testing.assert_array_equal(reward.sum(0), np.full(num_envs, episodes, np.float32))
    np.testing.assert_array_equal(terminated.sum(0), np.full(num_envs, episodes))
    assert not truncated.any()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(length=1), "length"),
        (dict(length=0), "length"),
        (dict(num_cues=1), "num_cues"),
    ],
)
def test_memory_cue_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name) as error:
        MemoryCue(**kwargs)
    assert repr(next(iter(kwargs.values()))) in str(error.value)


def test_memory_cue_equality_hash_and_repr():
    assert MemoryCue() == MemoryCue(2, 4) == MemoryCue(num_cues=2, length=4)
    assert hash(MemoryCue()) == hash(MemoryCue(num_cues=2, length=4))
    assert MemoryCue(2, 4) != MemoryCue(2, 5) and MemoryCue(2, 4) != MemoryCue(3, 4)
    assert repr(MemoryCue()) == "MemoryCue(num_cues=2, length=4)"
    assert Config(env=MemoryCue(3, 6)).env == Config(env=MemoryCue(3, 6)).env
    # The default params never truncate an episode.
    assert MemoryCue().default_params == ProbeParams()
    assert ProbeParams().max_steps_in_episode > 1000


def test_memory_cue_id_resolves():
    assert "MemoryCue" in PROBE_ENVS
    check_env_id("probe/MemoryCue")
    env, params = resolve_env("probe/MemoryCue")
    assert env == MemoryCue() and params == ProbeParams()
    spec = env_spec(env, params)
    assert spec.obs_dim == 3 and spec.discrete and spec.action_dim == 2
    assert Config(env="probe/MemoryCue").env == "probe/MemoryCue"
    with pytest.raises(ValueError, match="did you mean probe/MemoryCue"):
        Config(env="probe/MemoryCues")


# ---- StatelessCartPole ---------------------------------------------------------------


def test_stateless_cartpole_spaces_and_identity():
    env = StatelessCartPole()
    reference, reference_params = gymnax.make("CartPole-v1")
    params = env.default_params
    assert params == reference_params and params.max_steps_in_episode == 500
    assert isinstance(env.action_space(params), spaces.Discrete)
    assert env.action_space(params).n == 2
    assert env.num_actions == 2
    space = env.observation_space(params)
    assert isinstance(space, spaces.Box)
    assert space.shape == (2,) and space.dtype == jnp.float32
    full = reference.observation_space(params)
    np.testing.assert_allclose(np.asarray(space.low), np.asarray(full.low)[[0, 2]])
    np.testing.assert_allclose(np.asarray(space.high), np.asarray(full.high)[[0, 2]])
    assert env.name == "StatelessCartPole-v1"
    assert repr(env) == "StatelessCartPole()"
    assert env == StatelessCartPole() and hash(env) == hash(StatelessCartPole())
    assert env != reference
    assert purejaxppo.envs.StatelessCartPole is StatelessCartPole


def test_stateless_cartpole_observes_cartpoles_positions():
    env, params = StatelessCartPole(), StatelessCartPole().default_params
    reference, reference_params = gymnax.make("CartPole-v1")
    num_envs, steps = 16, 120  # long enough for episodes to end and auto-reset
    actions = jax.random.bernoulli(jax.random.key(2), 0.5, (steps, num_envs)).astype(jnp.int32)
    obs, _, out = run_episodes(env, params, actions, num_envs)
    ref_obs, _, ref_out = run_episodes(reference, reference_params, actions, num_envs)

    assert obs.shape == (num_envs, 2) and obs.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(obs), np.asarray(ref_obs)[:, [0, 2]])
    obs_t, state_t, reward, terminated, truncated, info = out
    ref_obs_t, ref_state_t, ref_reward, ref_terminated, ref_truncated, ref_info = ref_out
    assert obs_t.shape == (steps, num_envs, 2)
    np.testing.assert_array_equal(np.asarray(obs_t), np.asarray(ref_obs_t)[..., [0, 2]])
    np.testing.assert_array_equal(
        np.asarray(info["final_observation"]),
        np.asarray(ref_info["final_observation"])[..., [0, 2]],
    )
    for a, b in [(reward, ref_reward), (terminated, ref_terminated), (truncated, ref_truncated)]:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    jax.tree.map(np.testing.assert_array_equal, state_t, ref_state_t)
    assert np.asarray(terminated).any()  # episodes ended (and were reset) on the way


def test_stateless_cartpole_truncates_at_the_time_limit():
    env = StatelessCartPole()
    # A short time limit, so that a balancing policy is cut by it before falling.
    params = env.default_params.replace(max_steps_in_episode=20)
    num_envs = 8

    def run(key):
        reset_keys = jax.random.split(key, num_envs)
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(reset_keys, params)
        step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

        def one(carry, key):
            obs, state = carry
            # Push the cart under the pole (toward the lean), which balances 20 steps.
            action = (state.theta + 0.5 * state.theta_dot > 0).astype(jnp.int32)
            obs, state, reward, terminated, truncated, _ = step(
                jax.random.split(key, num_envs), state, action, params
            )
            return (obs, state), (reward, terminated, truncated, state.time)

        return jax.lax.scan(one, (obs, state), jax.random.split(key, 45))[1]

    reward, terminated, truncated, time = map(np.asarray, jax.jit(run)(jax.random.key(0)))
    assert not terminated.any()
    # Cut after steps 20 and 40 (1-based), then reset to time 0: truncated, not terminated.
    np.testing.assert_array_equal(np.flatnonzero(truncated[:, 0]), [19, 39])
    assert (truncated == truncated[:, :1]).all()
    assert (time[[19, 39]] == 0).all() and (reward == 1.0).all()


def test_stateless_cartpole_truncates_at_500_by_default():
    env, params = resolve_env("StatelessCartPole-v1")
    assert params.max_steps_in_episode == 500
    # Through the adapter's step (`step_envs`): a balanced pole for 500 steps is cut
    # by the time limit, which the adapter reports as truncation with the final obs.
    from purejaxppo.envs import reset_envs, step_envs

    spec = env_spec(env, params)
    num_envs = 2
    _, state = reset_envs(env, params, jax.random.split(jax.random.key(0), num_envs), spec)

    def run(state, keys):
        def one(state, key):
            action = (state.theta + 0.5 * state.theta_dot > 0).astype(jnp.int32)
            res = step_envs(env, params, spec, jax.random.split(key, num_envs), state, action)
            return res.env_state, (res.terminated, res.truncated, res.final_obs)

        return jax.lax.scan(one, state, keys)[1]

    keys = jax.random.split(jax.random.key(1), 501)
    terminated, truncated, final_obs = map(np.asarray, jax.jit(run)(state, keys))
    assert not terminated.any()
    assert np.flatnonzero(truncated[:, 0]).tolist() == [499]
    assert truncated[499].all() and final_obs.shape == (501, num_envs, 2)


def test_stateless_cartpole_id_is_accepted_without_building():
    assert OWN_ENVS["StatelessCartPole-v1"] == ("purejaxppo.envs.pomdp", "StatelessCartPole")
    check_env_id("StatelessCartPole-v1")
    config = Config(env="StatelessCartPole-v1")
    assert config.env == "StatelessCartPole-v1"
    env, params = resolve_env(config.env)
    assert env == StatelessCartPole() and params.max_steps_in_episode == 500
    assert resolve_env("StatelessCartPole-v1", episode_length=50)[1].max_steps_in_episode == 50
    assert Config(env=StatelessCartPole()).env == Config(env=StatelessCartPole()).env
    with pytest.raises(ValueError, match="did you mean 'StatelessCartPole-v1'"):
        Config(env="StatelessCartpole-v1")
