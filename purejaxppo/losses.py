"""The PPO objective, split into pieces that can be checked by hand."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from purejaxppo.config import Config


class Batch(NamedTuple):
    """Flat training samples, leading axis N (a minibatch or the whole batch)."""

    obs: jax.Array  # [N, obs_dim]
    action: jax.Array  # [N] or [N, action_dim]
    log_prob: jax.Array  # [N] log-prob under the behaviour policy
    value: jax.Array  # [N] value predicted during the rollout
    advantages: jax.Array  # [N]
    returns: jax.Array  # [N] advantages + value (the value target)


def clipped_surrogate(ratio: jax.Array, advantages: jax.Array, clip_eps) -> jax.Array:
    """PPO-Clip policy loss: -mean(min(ratio * A, clip(ratio, 1 +- eps) * A))."""
    unclipped = ratio * advantages
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
    return -jnp.mean(jnp.minimum(unclipped, clipped))


def value_loss(
    value: jax.Array, old_value: jax.Array, returns: jax.Array, vf_clip_eps, clip: bool
) -> jax.Array:
    """0.5 * mean squared error; with `clip`, the pessimistic max of the plain and the
    clipped (old_value +- vf_clip_eps) prediction's errors."""
    squared = (value - returns) ** 2
    if clip:
        clipped_value = old_value + jnp.clip(value - old_value, -vf_clip_eps, vf_clip_eps)
        squared = jnp.maximum(squared, (clipped_value - returns) ** 2)
    return 0.5 * jnp.mean(squared)


def normalize(x: jax.Array, eps: float = 1e-8) -> jax.Array:
    return (x - x.mean()) / (x.std() + eps)


def ppo_loss(
    params: Any, network: Any, config: Config, batch: Batch
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Total loss = policy + vf_coef * value - ent_coef * entropy, and its parts."""
    dist, value = network.apply(params, batch.obs)
    log_prob = dist.log_prob(batch.action)
    log_ratio = log_prob - batch.log_prob
    ratio = jnp.exp(log_ratio)
    adv = normalize(batch.advantages) if config.normalize_advantages else batch.advantages

    pg = clipped_surrogate(ratio, adv, config.clip_eps)
    vf = value_loss(value, batch.value, batch.returns, config.vf_clip_eps, config.clip_value_loss)
    entropy = jnp.mean(dist.entropy())
    loss = pg + config.vf_coef * vf - config.ent_coef * entropy
    metrics = {
        "policy_loss": pg,
        "value_loss": vf,
        "entropy": entropy,
        # Low-variance estimator of KL(old || new) (Schulman's k3).
        "approx_kl": jnp.mean((ratio - 1.0) - log_ratio),
        "clip_frac": jnp.mean((jnp.abs(ratio - 1.0) > config.clip_eps).astype(jnp.float32)),
    }
    return loss, metrics
