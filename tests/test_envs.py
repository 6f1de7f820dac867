"""The vectorised adapter steps exactly as gymnax's own `Environment.step`."""

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
from helpers import assert_trees_equal

from purejaxppo.envs import env_spec, reset_envs, split_step_keys, step_envs


def test_step_envs_matches_gymnax_step_through_resets():
    env, params = gymnax.make("CartPole-v1")
    spec = env_spec(env, params)
    _, state = reset_envs(env, params, jax.random.split(jax.random.key(0), 3))
    keys = jax.random.split(jax.random.key(1), (200, 3))
    gymnax_step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    ours = jax.jit(lambda k, s, a: step_envs(env, params, spec, k, s, a))
    ours_presplit = jax.jit(lambda k, s, a: step_envs(env, params, spec, split_step_keys(k), s, a))
    action = jnp.ones(3, jnp.int32)  # always push right: episodes end within ~10-30 steps
    ref_state = our_state = state
    ends = 0
    for t in range(200):
        obs, ref_state, reward, term, trunc, info = gymnax_step(keys[t], ref_state, action, params)
        res = ours(keys[t], our_state, action)
        pre = ours_presplit(keys[t], our_state, action)
        for got in (res, pre):
            np.testing.assert_allclose(got.obs, obs, atol=1e-6)
            np.testing.assert_allclose(got.final_obs, info["final_observation"], atol=1e-6)
            np.testing.assert_array_equal(got.terminated, term)
            np.testing.assert_array_equal(got.truncated, trunc & ~term)
            np.testing.assert_array_equal(got.reward, reward)
        our_state = res.env_state
        ends += int(term.sum())
    assert ends > 5  # the comparison covered automatic resets


def test_reset_only_when_any_env_ended_gives_the_same_transitions():
    """The Brax path (`costly_reset`: resets skipped on steps where no env ended)
    against the per-env select path, on CartPole with mixed ends and non-ends."""
    env, params = gymnax.make("CartPole-v1")
    costly, _ = gymnax.make("CartPole-v1")
    costly.costly_reset = True
    spec = env_spec(env, params)
    _, state0 = reset_envs(env, params, jax.random.split(jax.random.key(0), 4))
    actions = jax.random.bernoulli(jax.random.key(2), 0.8, (60, 4)).astype(jnp.int32)
    keys = split_step_keys(jax.random.split(jax.random.key(1), (60, 4)))

    def run(e):
        def body(s, x):
            out = step_envs(e, params, spec, x[0], s, x[1])
            return out.env_state, out._replace(env_state=None)

        return jax.jit(lambda s: jax.lax.scan(body, s, (keys, actions)))(state0)

    (state_a, out_a), (state_b, out_b) = run(env), run(costly)
    done = np.asarray(out_a.terminated | out_a.truncated)
    assert done.any() and not done.any(axis=1).all()  # both branches were taken
    assert_trees_equal((state_a, out_a), (state_b, out_b))
