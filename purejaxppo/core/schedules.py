"""Per-update schedules and adaptation rules: the learning rate, the entropy
coefficient, the clip range and the KL-penalty coefficient.

Each `Config` choice (`lr_schedule`, `ent_schedule`, `clip_schedule`, `objective`)
maps to one small named function, looked up once at trace time, so the update has no
branches of its own. All functions are pure and jittable; `update_step` is the 0-based update index.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from purejaxppo.config import Config

# ---- warm-up then decay (learning rate, entropy coefficient) --------------------------


def _hold(peak: jax.Array, final: jax.Array, progress: jax.Array) -> jax.Array:
    return peak


def _linear(peak: jax.Array, final: jax.Array, progress: jax.Array) -> jax.Array:
    return final + (peak - final) * (1.0 - progress)


def _cosine(peak: jax.Array, final: jax.Array, progress: jax.Array) -> jax.Array:
    return final + (peak - final) * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))


DECAYS: dict[str, Callable[[jax.Array, jax.Array, jax.Array], jax.Array]] = {
    "constant": _hold,
    "linear": _linear,
    "cosine": _cosine,
}


def warmup_decay(
    kind: str,
    start: jax.Array,
    peak: jax.Array,
    final: jax.Array,
    warmup: jax.Array,
    update_step: jax.Array,
    num_updates: int,
) -> jax.Array:
    """A value per update: a linear ramp from `start` to `peak` over the first
    W = warmup * num_updates updates (update 0 gets `start`), then `kind` over the rest:
    "constant" holds `peak`, "linear" and "cosine" go from `peak` at update W to `final`
    at update num_updates (the end of the run, one past the last update).

    Every value but `kind` and `num_updates` may be traced (swept, or a tracer), which
    is why this is not optax's warmup schedules: they test their step counts in Python.
    At integer W it equals optax.join_schedules of linear_schedule(start, peak, W)
    with linear_schedule / cosine_decay_schedule(peak, decay_steps=num_updates - W,
    alpha=final / peak) (tests/test_schedules.py checks it)."""
    step = update_step.astype(jnp.float32)
    warm = jnp.asarray(warmup, jnp.float32) * num_updates
    ramp = start + (peak - start) * (step / jnp.maximum(warm, 1e-12))
    progress = jnp.clip((step - warm) / jnp.maximum(num_updates - warm, 1e-12), 0.0, 1.0)
    decayed = DECAYS[kind](peak, final, progress)
    return jnp.where(step < warm, ramp, decayed).astype(jnp.float32)


# ---- learning rate -------------------------------------------------------------------


def scheduled_lr(config: Config, update_step: jax.Array, current_lr: jax.Array) -> jax.Array:
    """The learning rate for update number `update_step` (0-based): the warm-up and
    then constant, linear or cosine decay of `warmup_decay` (linear by default: lr *
    (1 - step / num_updates)), or under "adaptive_kl" the value carried in the state
    (`current_lr`)."""
    if config.lr_schedule == "adaptive_kl":
        return current_lr
    return warmup_decay(
        config.lr_schedule,
        config.lr_warmup_from,
        config.lr,
        config.lr_final,
        config.lr_warmup,
        update_step,
        config.num_updates,
    )


def scheduled_ent_coef(config: Config, update_step: jax.Array) -> jax.Array:
    """The entropy coefficient for update `update_step`: config.ent_coef under the
    default "constant" ent_schedule, else its warm-up and decay (`warmup_decay`)."""
    return warmup_decay(
        config.ent_schedule,
        config.ent_warmup_from,
        config.ent_coef,
        config.ent_coef_final,
        config.ent_warmup,
        update_step,
        config.num_updates,
    )


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
