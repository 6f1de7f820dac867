"""The PPO objective, split into pieces that can be checked by hand."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from purejaxppo.config import Config
from purejaxppo.core.value_targets import critic_loss
from purejaxppo.nn.recurrent import unroll
from purejaxppo.scale.collectives import global_mean, global_var


class Batch(NamedTuple):
    """Flat training samples, leading axis N (a minibatch or the whole batch).

    Recurrent networks keep the rollout's time order instead: every per-step field is
    [T, b, ...] (b env sequences), `dones` marks the steps after which the carry is
    reset, and `carry` [b, ...] is each sequence's carry at its first step."""

    obs: Any  # [N, obs_dim], or a dict of [N, *leaf shape]
    action: jax.Array  # [N] or [N, action_dim]
    log_prob: jax.Array  # [N] log-prob under the behaviour policy
    value: jax.Array  # [N] value predicted during the rollout
    advantages: jax.Array  # [N]
    returns: jax.Array  # [N] advantages + value (the value target)
    old_dist: Any = None  # behaviour policy per row (objectives with a KL penalty), else None
    dones: Any = None  # recurrent: [T, b] bool, the episode ended at this step; else None
    carry: Any = None  # recurrent: the carry at each sequence's first step [b, ...]; else None


class StepSettings(NamedTuple):
    """Per-update values that enter every minibatch step (traced scalars)."""

    lr: jax.Array
    clip_eps: jax.Array
    beta: jax.Array  # KL-penalty coefficient
    ent_coef: jax.Array  # entropy coefficient (scheduled)
    value_scale: Any = ()  # popart: this update's ValueScale of the value targets; ()


def network_outputs(network: Any, params: Any, batch: Batch) -> tuple[Any, jax.Array]:
    """(policy, critic head output) for every row of `batch` (see
    core.value_targets.critic_value): one batched call for a feed-forward
    network, the sequences re-run from their stored carries for a recurrent one."""
    if batch.carry is None:
        return network.apply(params, batch.obs)
    return unroll(network, params, batch.carry, batch.obs, batch.dones)


def batch_policy(network: Any, params: Any, batch: Batch) -> Any:
    """The policy alone for every row of `batch` (see `network_outputs`)."""
    if batch.carry is None:
        return network.apply(params, batch.obs, method="policy")
    return unroll(network, params, batch.carry, batch.obs, batch.dones)[0]


def clipped_surrogate(ratio: jax.Array, advantages: jax.Array, clip_eps) -> jax.Array:
    """PPO-Clip policy loss: -mean(min(ratio * A, clip(ratio, 1 +- eps) * A))."""
    unclipped = ratio * advantages
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
    return -jnp.mean(jnp.minimum(unclipped, clipped))


def kl_penalized_surrogate(
    ratio: jax.Array, advantages: jax.Array, kl: jax.Array, beta
) -> jax.Array:
    """PPO-Penalty policy loss: -mean(ratio * A) + beta * mean(KL(old || new))."""
    return -jnp.mean(ratio * advantages) + beta * jnp.mean(kl)


def normalize(x: jax.Array, eps: float = 1e-8, axis_name: str | None = None) -> jax.Array:
    """(x - mean) / (std + eps), with the statistics over every shard of `axis_name`."""
    if axis_name is None:
        return (x - x.mean()) / (x.std() + eps)
    mean = global_mean(x, axis_name)
    return (x - mean) / (jnp.sqrt(global_var(x, axis_name)) + eps)


def gaussian_base(dist: Any) -> Any:
    """The distribution whose KL the penalty uses: a TanhGaussian's Gaussian (a bijection
    leaves the KL unchanged), anything else as it is."""
    return dist.base if hasattr(dist, "base") else dist


def behaviour_rows(dist: Any) -> Any:
    """A distribution with every field batched per row, so it can be shuffled and
    gathered with the rest of a Batch (the Gaussian's log-std is shared across rows)."""
    dist = gaussian_base(dist)
    if hasattr(dist, "log_std"):
        return dist._replace(log_std=jnp.broadcast_to(dist.log_std, dist.mean.shape))
    return dist


def clip_objective(
    ratio: jax.Array, adv: jax.Array, dist: Any, batch: Batch, settings: StepSettings
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """objective="clip": the clipped surrogate alone (no extra metrics)."""
    return clipped_surrogate(ratio, adv, settings.clip_eps), {}


def kl_penalty_objective(
    ratio: jax.Array, adv: jax.Array, dist: Any, batch: Batch, settings: StepSettings
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """objective="kl_penalty": -mean(ratio * A) + beta * mean(KL(old || new)), with the
    exact KL against the behaviour policy in `batch.old_dist`."""
    kl = batch.old_dist.kl(gaussian_base(dist))
    pg = kl_penalized_surrogate(ratio, adv, kl, settings.beta)
    return pg, {"kl_penalty": jnp.mean(kl)}


def clip_kl_penalty_objective(
    ratio: jax.Array, adv: jax.Array, dist: Any, batch: Batch, settings: StepSettings
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """objective="clip+kl_penalty": the clipped surrogate + beta * mean(KL(old || new))."""
    kl = batch.old_dist.kl(gaussian_base(dist))
    pg = clipped_surrogate(ratio, adv, settings.clip_eps) + settings.beta * jnp.mean(kl)
    return pg, {"kl_penalty": jnp.mean(kl)}


# config.objective -> (ratio, advantages, new dist, batch, settings) -> (policy loss, metrics)
OBJECTIVE_LOSSES = {
    "clip": clip_objective,
    "kl_penalty": kl_penalty_objective,
    "clip+kl_penalty": clip_kl_penalty_objective,
}


def ppo_loss(
    params: Any,
    network: Any,
    config: Config,
    batch: Batch,
    settings: StepSettings,
    axis_name: str | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Total loss = policy + vf_coef * value - ent_coef * entropy, and its parts.
    The value term is `core.value_targets.critic_loss` (config.value_target, PopArt).

    The policy term follows config.objective (see OBJECTIVE_LOSSES); with a KL penalty,
    `batch.old_dist` holds the behaviour policy and the exact KL(old || new) is used.
    """
    dist, critic_out = network_outputs(network, params, batch)
    log_prob = dist.log_prob(batch.action)
    log_ratio = log_prob - batch.log_prob
    ratio = jnp.exp(log_ratio)
    adv = batch.advantages
    if config.advantage_norm == "minibatch":  # over the global minibatch when data-parallel
        adv = normalize(adv, axis_name=axis_name)

    pg, objective_metrics = OBJECTIVE_LOSSES[config.objective](ratio, adv, dist, batch, settings)
    vf = critic_loss(config, critic_out, batch.value, batch.returns, settings.value_scale)
    entropy = jnp.mean(dist.entropy())
    loss = pg + config.vf_coef * vf - settings.ent_coef * entropy
    metrics = {
        "policy_loss": pg,
        "value_loss": vf,
        "entropy": entropy,
        # Low-variance estimator of KL(old || new) (Schulman's k3).
        "approx_kl": jnp.mean((ratio - 1.0) - log_ratio),
        "clip_frac": jnp.mean((jnp.abs(ratio - 1.0) > settings.clip_eps).astype(jnp.float32)),
        **objective_metrics,
    }
    return loss, metrics
