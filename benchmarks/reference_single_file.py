"""A baseline in the structure of the well-known single-file fully jitted PPO scripts
(PureJaxRL `ppo.py` style), written here for side-by-side timing only.

Same workload and hyperparameters as purejaxppo's CartPole-default; the structural
differences are the point: actor and critic run together inside every rollout step,
the shuffle is `jax.random.permutation` + one gather per array, the optimizer works
per parameter leaf, and (like those scripts) truncation is treated as termination.
`throughput.py --reference` times it in the same process as purejaxppo so the ratio
is measured under the same machine load.
"""

from __future__ import annotations

import math

import flax.linen as nn
import gymnax
import jax
import jax.numpy as jnp
import optax

# flax's orthogonal init runs a batched LAPACK QR under vmap, which can deadlock
# jaxlib 0.10 on CPU; purejaxppo's Gram-Schmidt version has the same distribution.
from purejaxppo.nn.networks import orthogonal

NUM_ENVS, NUM_STEPS, EPOCHS, MINIBATCHES = 4, 128, 4, 4


class _ActorCritic(nn.Module):
    num_actions: int

    @nn.compact
    def __call__(self, x):
        def torso(h):
            for _ in range(2):
                h = nn.Dense(64, kernel_init=orthogonal(math.sqrt(2)))(h)
                h = jnp.tanh(h)
            return h

        logits = nn.Dense(self.num_actions, kernel_init=orthogonal(0.01))(torso(x))
        value = nn.Dense(1, kernel_init=orthogonal(1.0))(torso(x))
        return logits, value[..., 0]


def make_train(total_timesteps: int = 500_000):
    """train(key) -> per-update sum of rewards at episode ends (for a sanity check)."""
    env, env_params = gymnax.make("CartPole-v1")
    net = _ActorCritic(env.action_space(env_params).n)
    batch = NUM_ENVS * NUM_STEPS
    num_updates = total_timesteps // batch

    def train(key):
        key, init_key, reset_key = jax.random.split(key, 3)
        params = net.init(init_key, jnp.zeros((1, 4)))
        steps_per_update = EPOCHS * MINIBATCHES
        schedule = lambda count: 2.5e-4 * (1.0 - (count // steps_per_update) / num_updates)
        tx = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(schedule, eps=1e-5))
        opt_state = tx.init(params)
        obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(
            jax.random.split(reset_key, NUM_ENVS), env_params
        )

        def rollout_step(carry, _):
            params, env_state, obs, key = carry
            key, act_key, step_key = jax.random.split(key, 3)
            logits, value = net.apply(params, obs)
            action = jax.random.categorical(act_key, logits)
            log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], -1)[:, 0]
            next_obs, env_state, reward, term, trunc, _ = jax.vmap(
                env.step, in_axes=(0, 0, 0, None)
            )(jax.random.split(step_key, NUM_ENVS), env_state, action, env_params)
            done = jnp.logical_or(term, trunc).astype(jnp.float32)
            return (params, env_state, next_obs, key), (obs, action, log_prob, value, reward, done)

        def update_step(carry, _):
            params, opt_state, env_state, obs, key = carry
            (_, env_state, obs, key), traj = jax.lax.scan(
                rollout_step, (params, env_state, obs, key), None, NUM_STEPS
            )
            t_obs, t_action, t_logp, t_value, t_reward, t_done = traj
            _, last_value = net.apply(params, obs)

            def gae_step(carry, x):
                adv, next_value = carry
                done, value, reward = x
                delta = reward + 0.99 * next_value * (1 - done) - value
                adv = delta + 0.99 * 0.95 * (1 - done) * adv
                return (adv, value), adv

            _, advantages = jax.lax.scan(
                gae_step,
                (jnp.zeros_like(last_value), last_value),
                (t_done, t_value, t_reward),
                reverse=True,
            )
            targets = advantages + t_value
            data = (t_obs, t_action, t_logp, t_value, advantages, targets)

            def epoch(carry, _):
                params, opt_state, key = carry
                key, perm_key = jax.random.split(key)
                perm = jax.random.permutation(perm_key, batch)
                shuffled = jax.tree.map(
                    lambda x: jnp.take(x.reshape((batch, *x.shape[2:])), perm, 0).reshape(
                        (MINIBATCHES, -1, *x.shape[2:])
                    ),
                    data,
                )

                def minibatch(carry, mb):
                    params, opt_state = carry
                    obs, action, old_logp, old_value, adv, target = mb

                    def loss_fn(p):
                        logits, value = net.apply(p, obs)
                        logp_all = jax.nn.log_softmax(logits)
                        logp = jnp.take_along_axis(logp_all, action[:, None], -1)[:, 0]
                        clipped_v = old_value + jnp.clip(value - old_value, -0.2, 0.2)
                        v_loss = (
                            0.5
                            * jnp.maximum((value - target) ** 2, (clipped_v - target) ** 2).mean()
                        )
                        ratio = jnp.exp(logp - old_logp)
                        a = (adv - adv.mean()) / (adv.std() + 1e-8)
                        pg = -jnp.minimum(ratio * a, jnp.clip(ratio, 0.8, 1.2) * a).mean()
                        entropy = -(jnp.exp(logp_all) * logp_all).sum(-1).mean()
                        return pg + 0.5 * v_loss - 0.01 * entropy

                    grads = jax.grad(loss_fn)(params)
                    updates, opt_state = tx.update(grads, opt_state, params)
                    return (optax.apply_updates(params, updates), opt_state), None

                (params, opt_state), _ = jax.lax.scan(minibatch, (params, opt_state), shuffled)
                return (params, opt_state, key), None

            (params, opt_state, key), _ = jax.lax.scan(
                epoch, (params, opt_state, key), None, EPOCHS
            )
            return (params, opt_state, env_state, obs, key), (t_reward * t_done).sum()

        _, metric = jax.lax.scan(
            update_step, (params, opt_state, env_state, obs, key), None, num_updates
        )
        return metric

    return train, num_updates * batch
