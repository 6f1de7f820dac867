"""The learning step: epochs of shuffled minibatch gradient steps, as scans.

`Learner` bundles what every step is built from (network, unravel, optimizer, config,
axis name); `update_epochs(learner, settings, batch, params, opt_state, key)` runs
the epochs, each `epoch_update` a scan of `minibatch_update`s."""

from __future__ import annotations

import functools
from collections.abc import Callable
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


class Learner(NamedTuple):
    """What every minibatch and epoch step of a run is built from (static; bound by
    closures, never traced as a whole): the network, the map from the flat parameter
    vector back to its pytree, the optimizer, the config and the data-parallel axis
    (None on one device). Build it with `make_learner`."""

    network: Any
    unravel: Callable[[jax.Array], Any]
    optimizer: optax.GradientTransformation
    config: Config
    axis_name: str | None = None


def make_learner(
    network: Any, config: Config, params: Any, axis_name: str | None = None
) -> Learner:
    """The Learner for `network`'s `params` (only their structure is used)."""
    return Learner(network, ravel_pytree(params)[1], make_optimizer(config), config, axis_name)


def skipped(fn: Callable, state: LearnerState) -> tuple[LearnerState, Any]:
    """What `fn(state)` gives when early stopping skips it: the state unchanged and
    zeros shaped like fn's outputs (zero weight, so they drop out of the metric means)."""
    outputs = jax.eval_shape(fn, state)[1]
    return state, jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), outputs)


def gradient_step(
    learner: Learner, settings: StepSettings, state: LearnerState, minibatch: Batch
) -> tuple[LearnerState, dict[str, jax.Array]]:
    """One optimizer step on `minibatch`, its loss metrics with `weight` 1.
    Data-parallel: gradients and metrics are averaged over the shards first."""

    def loss_fn(params):
        return ppo_loss(
            params, learner.network, learner.config, minibatch, settings, learner.axis_name
        )

    # The gradient is taken w.r.t. the parameter pytree and then flattened, not
    # through `unravel`: the transpose of unravel's slices is one zero-padded add of
    # the whole vector per leaf, which under vmap over 32 seeds cost ~24 ms of an
    # 84 ms CartPole update; one concatenation of the leaf gradients costs little.
    grads, metrics = jax.grad(loss_fn, has_aux=True)(learner.unravel(state.flat_params))
    grads = ravel_pytree(grads)[0]
    grads, metrics = maybe_pmean((grads, metrics), learner.axis_name)
    updates, opt_state = learner.optimizer.update(grads, state.opt_state, state.flat_params)
    stepped = LearnerState(
        state.flat_params - settings.lr * updates,
        opt_state,
        state.stopped,
        state.steps_done + 1,
    )
    return stepped, {**metrics, "weight": jnp.ones((), jnp.float32)}


def hold_if_kl_exceeded(
    target_kl: jax.Array, state: LearnerState, stepped: LearnerState, approx_kl: jax.Array
) -> LearnerState:
    """SB3's rule: the step whose KL (measured before it) exceeds 1.5 * target_kl is not
    taken, and the update stops there."""
    exceeded = approx_kl > 1.5 * target_kl
    held = state._replace(stopped=jnp.ones((), bool))
    return jax.tree.map(lambda h, s: jnp.where(exceeded, h, s), held, stepped)


def minibatch_update(
    learner: Learner, settings: StepSettings, state: LearnerState, minibatch: Batch
) -> tuple[LearnerState, dict[str, jax.Array]]:
    """One gradient step. Metrics carry a `weight`: 1 where the loss was evaluated, 0
    where early stopping skipped the minibatch. Data-parallel (`learner.axis_name`):
    gradients and metrics are averaged over the shards, so every shard takes the same
    step."""
    target_kl = learner.config.target_kl
    if target_kl is None:
        return gradient_step(learner, settings, state, minibatch)

    def step(state: LearnerState):
        stepped, metrics = gradient_step(learner, settings, state, minibatch)
        return hold_if_kl_exceeded(target_kl, state, stepped, metrics["approx_kl"]), metrics

    return jax.lax.cond(state.stopped, functools.partial(skipped, step), step, state)


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


def shuffled_minibatches(key: jax.Array, batch: Batch, num_minibatches: int) -> Batch:
    """`batch` (leading axis N) in a random order, reshaped to
    [num_minibatches, N // num_minibatches, ...]."""
    rows = batch.advantages.shape[0]
    perm = random_permutation(key, rows)
    return jax.tree.map(
        lambda x: jnp.take(x, perm, axis=0).reshape(
            (num_minibatches, rows // num_minibatches, *x.shape[1:])
        ),
        batch,
    )


def sequence_minibatches(key: jax.Array, batch: Batch, num_minibatches: int) -> Batch:
    """A recurrent `batch` ([T, B] per-step fields, carry [B]) with its B env
    sequences in a random order, split into num_minibatches groups of whole sequences:
    [num_minibatches, T, B // num_minibatches, ...] (carry [num_minibatches, B // M, ...]).
    Time order within each sequence is kept."""
    envs = batch.advantages.shape[1]
    perm = random_permutation(key, envs)
    size = envs // num_minibatches

    def time_major(x):
        x = jnp.take(x, perm, axis=1)
        return jnp.swapaxes(x.reshape((x.shape[0], num_minibatches, size, *x.shape[2:])), 0, 1)

    def env_major(x):
        return jnp.take(x, perm, axis=0).reshape((num_minibatches, size, *x.shape[1:]))

    carry = jax.tree.map(env_major, batch.carry)
    return jax.tree.map(time_major, batch._replace(carry=None))._replace(carry=carry)


def epoch_update(
    learner: Learner, settings: StepSettings, batch: Batch, state: LearnerState, key: jax.Array
) -> tuple[LearnerState, dict[str, jax.Array]]:
    """One pass over `batch` (leading axis N, this shard's rows; recurrent: its env
    sequences) in a fresh random order."""

    def run_epoch(state: LearnerState):
        split = shuffled_minibatches if batch.carry is None else sequence_minibatches
        minibatches = split(key, batch, learner.config.num_minibatches)
        return jax.lax.scan(
            lambda s, mb: minibatch_update(learner, settings, s, mb), state, minibatches
        )

    if learner.config.target_kl is None:
        return run_epoch(state)

    # An update that has stopped early skips whole epochs, shuffle included.
    return jax.lax.cond(state.stopped, functools.partial(skipped, run_epoch), run_epoch, state)


class EpochsResult(NamedTuple):
    params: Any
    opt_state: Any
    metrics: dict[str, jax.Array]  # means over the minibatch steps evaluated
    steps_done: jax.Array  # int32: gradient steps taken
    stopped: jax.Array  # bool: KL early stopping ended the update


def evaluated_means(config: Config, metrics: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Means of the per-step `metrics` ([update_epochs, num_minibatches] each, with a
    `weight`) over the steps that were evaluated; `weight` itself is dropped."""
    metrics = dict(metrics)
    weight = metrics.pop("weight")
    if config.target_kl is None:  # every step was evaluated
        return jax.tree.map(jnp.mean, metrics)
    total = jnp.maximum(weight.sum(), 1.0)
    return jax.tree.map(lambda m: jnp.sum(m * weight) / total, metrics)


def update_epochs(
    learner: Learner,
    settings: StepSettings,
    batch: Batch,
    params: Any,
    opt_state: Any,
    key: jax.Array,
) -> EpochsResult:
    """update_epochs epochs over `batch`, stopping early when config.target_kl says so.
    Data-parallel (`learner.axis_name`): each shard shuffles its own rows with `key`."""
    keys = jax.random.split(key, learner.config.update_epochs)
    start = LearnerState(
        ravel_pytree(params)[0], opt_state, jnp.zeros((), bool), jnp.zeros((), jnp.int32)
    )
    state, metrics = jax.lax.scan(
        lambda s, k: epoch_update(learner, settings, batch, s, k), start, keys
    )
    return EpochsResult(
        learner.unravel(state.flat_params),
        state.opt_state,
        evaluated_means(learner.config, metrics),
        state.steps_done,
        state.stopped,
    )
