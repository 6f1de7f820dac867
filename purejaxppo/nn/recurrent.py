"""Recurrent actor-critics: the carry, its resets, and running a network over sequences.

The carry of a run is a tuple with one cell state per cell of the network (see
`ActorCritic.cells`): (actor, critic) with separate torsos, (shared,) with one. A cell
state is an array [..., recurrent_size] (GRU) or a pair (c, h) of them (LSTM). Every
cell starts from zeros, and a row's state returns to zeros after each step where its
episode ended (terminated or truncated), so the step after a done starts a fresh
episode from the initial state.

`unroll` is the update's view of a rollout: the network re-run over [T, b] rows from
the carry the rollout started with, the same resets applied at the same steps. The
torsos and heads run on all T * b rows at once; only the cells step through time.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from purejaxppo.nn.distributions import Distribution


def cell_carry(kind: str, size: int, batch_shape: tuple[int, ...]) -> Any:
    """The initial state of one cell for `batch_shape` rows (zeros)."""
    zeros = jnp.zeros((*batch_shape, size), jnp.float32)
    return zeros if kind == "gru" else (zeros, zeros)


def initial_carry(network: Any, batch_shape: tuple[int, ...]) -> tuple:
    """The initial carry of a recurrent network for `batch_shape` rows; () for a
    feed-forward one (no leaves, so its programs and checkpoints are unchanged)."""
    if network.recurrent is None:
        return ()
    cells = 1 if network.shared_torso else 2
    return tuple(
        cell_carry(network.recurrent, network.recurrent_size, batch_shape) for _ in range(cells)
    )


def reset_carry(carry: Any, done: jax.Array) -> Any:
    """`carry` with every row where `done` ([...] bool) back at the initial state."""
    return jax.tree.map(lambda c: jnp.where(done[..., None], jnp.zeros_like(c), c), carry)


def unroll(
    network: Any, params: Any, carry: tuple, obs: Any, dones: jax.Array
) -> tuple[Distribution, jax.Array]:
    """(policy, value) of every step of sequences obs [T, b, ...] started from `carry`
    [b, ...], with the carry reset after each step where dones [T, b] is True: the
    function the rollout computed step by step."""
    features = network.apply(params, obs, method="features")

    def step(c, x):
        f, done = x
        c, outputs = network.apply(params, c, f, method="cells")
        return reset_carry(c, done), outputs

    _, outputs = jax.lax.scan(step, carry, (features, dones))
    return network.apply(params, outputs, obs, method="heads")
