"""The learning step: epochs of shuffled minibatch gradient steps, as scans."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from purejaxppo.config import Config
from purejaxppo.losses import Batch, ppo_loss


class LearnerState(NamedTuple):
    params: Any
    opt_state: Any


def make_optimizer(config: Config) -> optax.GradientTransformation:
    """Global-norm clipping then Adam's moment scaling, built from traced values.

    The step size is applied by `minibatch_update` (it is known per update), so the
    optimizer state holds no schedule and chunked runs see the same arithmetic.
    """
    return optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm),
        optax.scale_by_adam(eps=config.adam_eps),
    )


def learning_rate(config: Config, update_step: jax.Array) -> jax.Array:
    """The learning rate used during update number `update_step` (0-based)."""
    if not config.anneal_lr:
        return jnp.asarray(config.lr, jnp.float32)
    frac = 1.0 - update_step.astype(jnp.float32) / config.num_updates
    return config.lr * frac


def minibatch_update(
    network: Any,
    optimizer: optax.GradientTransformation,
    config: Config,
    lr: jax.Array,
    learner: LearnerState,
    minibatch: Batch,
) -> tuple[LearnerState, dict[str, jax.Array]]:
    grads, metrics = jax.grad(ppo_loss, has_aux=True)(
        learner.params, network, config, minibatch
    )
    updates, opt_state = optimizer.update(grads, learner.opt_state, learner.params)
    params = jax.tree.map(lambda p, u: p - lr * u, learner.params, updates)
    return LearnerState(params, opt_state), metrics


def epoch_update(
    network: Any,
    optimizer: optax.GradientTransformation,
    config: Config,
    lr: jax.Array,
    batch: Batch,
    learner: LearnerState,
    key: jax.Array,
) -> tuple[LearnerState, dict[str, jax.Array]]:
    """One pass over `batch` (leading axis N) in a fresh random order."""
    n = config.batch_size
    perm = jax.random.permutation(key, n)
    minibatches = jax.tree.map(
        lambda x: jnp.take(x, perm, axis=0).reshape(
            (config.num_minibatches, config.minibatch_size, *x.shape[1:])
        ),
        batch,
    )
    return jax.lax.scan(
        lambda s, mb: minibatch_update(network, optimizer, config, lr, s, mb),
        learner,
        minibatches,
    )


def update_epochs(
    network: Any,
    optimizer: optax.GradientTransformation,
    config: Config,
    lr: jax.Array,
    batch: Batch,
    learner: LearnerState,
    key: jax.Array,
) -> tuple[LearnerState, dict[str, jax.Array]]:
    """update_epochs epochs; metrics are means over all minibatch steps."""
    keys = jax.random.split(key, config.update_epochs)
    learner, metrics = jax.lax.scan(
        lambda s, k: epoch_update(network, optimizer, config, lr, batch, s, k), learner, keys
    )
    return learner, jax.tree.map(jnp.mean, metrics)
