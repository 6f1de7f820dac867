"""The learning step: epochs of shuffled minibatch gradient steps, as scans."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from purejaxppo.config import Config
from purejaxppo.core.losses import Batch, StepSettings, ppo_loss
from purejaxppo.scale.collectives import maybe_pmean


def make_optimizer(config: Config) -> optax.GradientTransformation:
    """Global-norm clipping then Adam's moment scaling, built from traced values.

    The step size is applied by `minibatch_update` (it is known per update), so the
    optimizer state holds no schedule and chunked runs see the same arithmetic. The
    optimizer acts on the flat parameter vector (see LearnerState), so initialise it
    with `init_opt_state`.
    """
    return optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm),
        optax.scale_by_adam(eps=config.adam_eps),
    )


def init_opt_state(config: Config, params: Any) -> Any:
    """Optimizer state for `params` (over their flat vector)."""
    return make_optimizer(config).init(ravel_pytree(params)[0])


def scheduled_lr(config: Config, update_step: jax.Array, current_lr: jax.Array) -> jax.Array:
    """The learning rate for update number `update_step` (0-based): constant, linearly
    annealed (lr * (1 - step / num_updates)), or the adaptive value carried in the
    state (`current_lr`)."""
    if config.lr_schedule == "constant":
        return jnp.asarray(config.lr, jnp.float32)
    if config.lr_schedule == "adaptive_kl":
        return current_lr
    frac = 1.0 - update_step.astype(jnp.float32) / config.num_updates
    return config.lr * frac


def clip_range(config: Config, update_step: jax.Array) -> jax.Array:
    """The clip range for update `update_step`: constant, or linear from clip_eps at the
    first update to clip_eps_final at the last."""
    if config.clip_schedule == "constant":
        return jnp.asarray(config.clip_eps, jnp.float32)
    frac = jnp.minimum(update_step.astype(jnp.float32) / max(config.num_updates - 1, 1), 1.0)
    return config.clip_eps + (config.clip_eps_final - config.clip_eps) * frac


def adapt_beta(beta: jax.Array, kl: jax.Array, desired_kl) -> jax.Array:
    """The PPO paper's rule: halve beta if kl < desired_kl / 1.5, double it if
    kl > 1.5 * desired_kl, else keep it."""
    beta = jnp.where(kl < desired_kl / 1.5, beta / 2.0, beta)
    return jnp.where(kl > desired_kl * 1.5, beta * 2.0, beta)


def adapt_lr(lr: jax.Array, kl: jax.Array, desired_kl, lr_min, lr_max) -> jax.Array:
    """Divide lr by 1.5 if kl > 2 * desired_kl, multiply it by 1.5 if kl < desired_kl / 2,
    and keep it within [lr_min, lr_max]."""
    lr = jnp.where(kl > 2.0 * desired_kl, lr / 1.5, lr)
    lr = jnp.where(kl < desired_kl / 2.0, lr * 1.5, lr)
    return jnp.clip(lr, lr_min, lr_max)


class LearnerState(NamedTuple):
    """Parameters as one flat float32 vector plus the optimizer state over it, and the
    early-stopping bookkeeping of the update in progress.

    A flat vector makes gradient clipping and Adam a handful of fused kernels
    instead of a few per parameter leaf; on small networks that per-kernel overhead
    is a large share of a minibatch step (measured ~12% of it on CartPole-default).
    """

    flat_params: jax.Array  # [P]
    opt_state: Any
    stopped: jax.Array  # bool: KL early stopping has ended this update
    steps_done: jax.Array  # int32: minibatch gradient steps taken in this update


def _skipped(fn, learner: LearnerState):
    """What `fn(learner)` gives when early stopping skips it: the learner unchanged and
    zeros shaped like fn's outputs (zero weight, so they drop out of the metric means)."""
    outputs = jax.eval_shape(fn, learner)[1]
    return learner, jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), outputs)


def minibatch_update(
    network: Any,
    unravel: Any,
    optimizer: optax.GradientTransformation,
    config: Config,
    settings: StepSettings,
    learner: LearnerState,
    minibatch: Batch,
    axis_name: str | None = None,
) -> tuple[LearnerState, dict[str, jax.Array]]:
    """One gradient step. Metrics carry a `weight`: 1 where the loss was evaluated, 0
    where early stopping skipped the minibatch. Data-parallel (`axis_name`): gradients
    and metrics are averaged over the shards, so every shard takes the same step."""

    def step(learner: LearnerState):
        def loss_fn(flat_params):
            return ppo_loss(unravel(flat_params), network, config, minibatch, settings, axis_name)

        grads, metrics = jax.grad(loss_fn, has_aux=True)(learner.flat_params)
        grads, metrics = maybe_pmean((grads, metrics), axis_name)
        updates, opt_state = optimizer.update(grads, learner.opt_state, learner.flat_params)
        stepped = LearnerState(
            learner.flat_params - settings.lr * updates,
            opt_state,
            learner.stopped,
            learner.steps_done + 1,
        )
        metrics = {**metrics, "weight": jnp.ones((), jnp.float32)}
        if config.target_kl is None:
            return stepped, metrics
        # SB3's rule: the step whose KL (measured before it) is too large is not taken.
        exceeded = metrics["approx_kl"] > 1.5 * config.target_kl
        held = learner._replace(stopped=jnp.ones((), bool))
        return jax.tree.map(lambda h, s: jnp.where(exceeded, h, s), held, stepped), metrics

    if config.target_kl is None:
        return step(learner)

    return jax.lax.cond(learner.stopped, functools.partial(_skipped, step), step, learner)


def random_permutation(key: jax.Array, n: int) -> jax.Array:
    """A uniformly random permutation of range(n) (int32 [n]).

    For n <= 2**16 this sorts one uint32 array whose high bits are random and whose
    low bits are the index: the keys are distinct, so the result is always a
    permutation, and a single-operand integer sort is ~4x faster on XLA:CPU than the
    key-value sort inside `jax.random.permutation` (15 vs 65 us at n=512). Equal
    random high bits (probability ~n^2 / 2^(33 - log2 n) per call) keep index order
    for that pair only. Larger n uses `jax.random.permutation`.
    """
    index_bits = max(1, (n - 1).bit_length())
    if index_bits > 16:
        return jax.random.permutation(key, n)
    high = jax.random.bits(key, (n,), jnp.uint32) >> index_bits
    packed = (high << index_bits) | jnp.arange(n, dtype=jnp.uint32)
    return (jnp.sort(packed) & ((1 << index_bits) - 1)).astype(jnp.int32)


def epoch_update(
    network: Any,
    unravel: Any,
    optimizer: optax.GradientTransformation,
    config: Config,
    settings: StepSettings,
    batch: Batch,
    learner: LearnerState,
    key: jax.Array,
    axis_name: str | None = None,
) -> tuple[LearnerState, dict[str, jax.Array]]:
    """One pass over `batch` (leading axis N, this shard's rows) in a fresh random
    order."""
    rows = batch.obs.shape[0]

    def run_epoch(learner: LearnerState):
        perm = random_permutation(key, rows)
        minibatches = jax.tree.map(
            lambda x: jnp.take(x, perm, axis=0).reshape(
                (config.num_minibatches, rows // config.num_minibatches, *x.shape[1:])
            ),
            batch,
        )
        return jax.lax.scan(
            lambda s, mb: minibatch_update(
                network, unravel, optimizer, config, settings, s, mb, axis_name
            ),
            learner,
            minibatches,
        )

    if config.target_kl is None:
        return run_epoch(learner)

    # An update that has stopped early skips whole epochs, shuffle included.
    return jax.lax.cond(learner.stopped, functools.partial(_skipped, run_epoch), run_epoch, learner)


class EpochsResult(NamedTuple):
    params: Any
    opt_state: Any
    metrics: dict[str, jax.Array]  # means over the minibatch steps evaluated
    steps_done: jax.Array  # int32: gradient steps taken
    stopped: jax.Array  # bool: KL early stopping ended the update


def update_epochs(
    network: Any,
    config: Config,
    settings: StepSettings,
    batch: Batch,
    params: Any,
    opt_state: Any,
    key: jax.Array,
    axis_name: str | None = None,
) -> EpochsResult:
    """update_epochs epochs over `batch`, stopping early when config.target_kl says so.
    Data-parallel (`axis_name`): each shard shuffles its own rows with `key`."""
    optimizer = make_optimizer(config)
    flat_params, unravel = ravel_pytree(params)
    keys = jax.random.split(key, config.update_epochs)
    start = LearnerState(flat_params, opt_state, jnp.zeros((), bool), jnp.zeros((), jnp.int32))
    learner, metrics = jax.lax.scan(
        lambda s, k: epoch_update(
            network, unravel, optimizer, config, settings, batch, s, k, axis_name
        ),
        start,
        keys,
    )
    weight = metrics.pop("weight")
    if config.target_kl is None:
        means = jax.tree.map(jnp.mean, metrics)
    else:
        total = jnp.maximum(weight.sum(), 1.0)
        means = jax.tree.map(lambda m: jnp.sum(m * weight) / total, metrics)
    return EpochsResult(
        unravel(learner.flat_params),
        learner.opt_state,
        means,
        learner.steps_done,
        learner.stopped,
    )
