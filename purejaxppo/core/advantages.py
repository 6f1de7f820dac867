"""Generalised advantage estimation with correct termination/truncation handling."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from purejaxppo.scale.collectives import global_var


def compute_gae(
    reward: jax.Array,
    value: jax.Array,
    next_value: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    gamma: jax.Array | float,
    gae_lambda: jax.Array | float,
) -> tuple[jax.Array, jax.Array]:
    """GAE over time-major arrays [T, ...] (any trailing batch shape).

    next_value[t] is V(true s_{t+1}): the pre-reset observation where an episode
    ended. A termination does not bootstrap; a truncation does, and both stop the
    advantage recursion:

        delta_t = r_t + gamma * (1 - terminated_t) * next_value_t - value_t
        A_t     = delta_t + gamma * lambda * (1 - done_t) * A_{t+1},   A_T = 0
        returns = A + value

    Returns (advantages, returns), both [T, ...] float32.
    """
    not_term = 1.0 - terminated.astype(jnp.float32)
    not_done = 1.0 - jnp.logical_or(terminated, truncated).astype(jnp.float32)
    delta = reward + gamma * not_term * next_value - value
    decay = gamma * gae_lambda * not_done

    def gae_step(next_adv, xs):
        delta_t, decay_t = xs
        adv = delta_t + decay_t * next_adv
        return adv, adv

    _, advantages = jax.lax.scan(gae_step, jnp.zeros_like(delta[0]), (delta, decay), reverse=True)
    return advantages, advantages + value


def explained_variance(
    prediction: jax.Array, target: jax.Array, axis_name: str | None = None
) -> jax.Array:
    """1 - Var(target - prediction) / Var(target); NaN when the target is constant.
    With `axis_name`, the variances are over every shard's rows."""
    if axis_name is None:
        var_target, var_error = jnp.var(target), jnp.var(target - prediction)
    else:
        var_target = global_var(target, axis_name)
        var_error = global_var(target - prediction, axis_name)
    return jnp.where(var_target > 0, 1.0 - var_error / var_target, jnp.nan)
