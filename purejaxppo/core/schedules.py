"""Per-update schedules and adaptation rules: the learning rate, the clip range and
the KL-penalty coefficient.

Each `Config` choice (`lr_schedule`, `clip_schedule`, `objective`) maps to one small
named function, looked up once at trace time, so the update has no branches of its
own. All functions are pure and jittable; `update_step` is the 0-based update index.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from purejaxppo.config import Config

# ---- learning rate -------------------------------------------------------------------


def constant_lr(config: Config, update_step: jax.Array, current_lr: jax.Array) -> jax.Array:
    """config.lr at every update."""
    return jnp.asarray(config.lr, jnp.float32)


def linear_lr(config: Config, update_step: jax.Array, current_lr: jax.Array) -> jax.Array:
    """lr * (1 - update_step / num_updates): annealed towards 0 over the run."""
    frac = 1.0 - update_step.astype(jnp.float32) / config.num_updates
    return config.lr * frac


def carried_lr(config: Config, update_step: jax.Array, current_lr: jax.Array) -> jax.Array:
    """The value carried in the train state (adapted after each update by `adapt_lr`)."""
    return current_lr


LR_SCHEDULES: dict[str, Callable[[Config, jax.Array, jax.Array], jax.Array]] = {
    "constant": constant_lr,
    "linear": linear_lr,
    "adaptive_kl": carried_lr,
}


def scheduled_lr(config: Config, update_step: jax.Array, current_lr: jax.Array) -> jax.Array:
    """The learning rate for update number `update_step` (0-based): constant, linearly
    annealed (lr * (1 - step / num_updates)), or the adaptive value carried in the
    state (`current_lr`)."""
    return LR_SCHEDULES[config.lr_schedule](config, update_step, current_lr)


def adapt_lr(lr: jax.Array, kl: jax.Array, desired_kl, lr_min, lr_max) -> jax.Array:
    """Divide lr by 1.5 if kl > 2 * desired_kl, multiply it by 1.5 if kl < desired_kl / 2,
    and keep it within [lr_min, lr_max]."""
    lr = jnp.where(kl > 2.0 * desired_kl, lr / 1.5, lr)
    lr = jnp.where(kl < desired_kl / 2.0, lr * 1.5, lr)
    return jnp.clip(lr, lr_min, lr_max)


def next_lr(config: Config, lr: jax.Array, kl: jax.Array) -> jax.Array:
    """The learning rate carried to the next update: adapted to the measured `kl` under
    lr_schedule="adaptive_kl", else `lr` unchanged (the schedule recomputes it)."""
    if config.lr_schedule != "adaptive_kl":
        return lr
    return adapt_lr(lr, kl, config.desired_kl, config.lr_min, config.lr_max)


# ---- clip range ----------------------------------------------------------------------


def constant_clip(config: Config, update_step: jax.Array) -> jax.Array:
    """config.clip_eps at every update."""
    return jnp.asarray(config.clip_eps, jnp.float32)


def linear_clip(config: Config, update_step: jax.Array) -> jax.Array:
    """Linear from clip_eps at the first update to clip_eps_final at the last."""
    frac = jnp.minimum(update_step.astype(jnp.float32) / max(config.num_updates - 1, 1), 1.0)
    return config.clip_eps + (config.clip_eps_final - config.clip_eps) * frac


CLIP_SCHEDULES: dict[str, Callable[[Config, jax.Array], jax.Array]] = {
    "constant": constant_clip,
    "linear": linear_clip,
}


def clip_range(config: Config, update_step: jax.Array) -> jax.Array:
    """The clip range for update `update_step`: constant, or linear from clip_eps at the
    first update to clip_eps_final at the last."""
    return CLIP_SCHEDULES[config.clip_schedule](config, update_step)


# ---- KL-penalty coefficient ----------------------------------------------------------


def adapt_beta(beta: jax.Array, kl: jax.Array, desired_kl) -> jax.Array:
    """The PPO paper's rule: halve beta if kl < desired_kl / 1.5, double it if
    kl > 1.5 * desired_kl, else keep it."""
    beta = jnp.where(kl < desired_kl / 1.5, beta / 2.0, beta)
    return jnp.where(kl > desired_kl * 1.5, beta * 2.0, beta)


def next_beta(config: Config, beta: jax.Array, kl: jax.Array) -> jax.Array:
    """The KL-penalty coefficient for the next update: adapted to `kl` when the
    objective has a KL penalty, else unchanged (plain PPO-Clip never reads it)."""
    if config.objective == "clip":
        return beta
    return adapt_beta(beta, kl, config.desired_kl)
