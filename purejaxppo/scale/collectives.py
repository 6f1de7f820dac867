"""Collectives over an optional mapped axis (the data-parallel `dp` axis).

Every function is the identity (or the local computation) when `axis_name is None`,
so the single-device program is unchanged; inside `jax.shard_map` or
`jax.vmap(..., axis_name=...)` they combine the devices' shards.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def maybe_psum(x: Any, axis_name: str | None) -> Any:
    return x if axis_name is None else jax.lax.psum(x, axis_name)


def maybe_pmean(x: Any, axis_name: str | None) -> Any:
    return x if axis_name is None else jax.lax.pmean(x, axis_name)


def shard_count(axis_name: str | None) -> int:
    """Number of shards along the axis (1 without one)."""
    return 1 if axis_name is None else jax.lax.axis_size(axis_name)


def local_rows(x: jax.Array, axis_name: str | None, axis: int = 0) -> jax.Array:
    """This shard's contiguous block of a globally computed array: the global size
    along `axis` is split evenly over the shards, shard i taking block i. Random keys
    drawn globally and then sliced make the result independent of the shard count."""
    if axis_name is None:
        return x
    size = x.shape[axis] // shard_count(axis_name)
    start = jax.lax.axis_index(axis_name) * size
    return jax.lax.dynamic_slice_in_dim(x, start, size, axis=axis)


def global_mean(x: jax.Array, axis_name: str | None) -> jax.Array:
    """Mean over all elements of every shard (shards of equal size)."""
    return maybe_pmean(jnp.mean(x), axis_name)


def global_var(x: jax.Array, axis_name: str | None) -> jax.Array:
    """Population variance over all elements of every shard (shards of equal size)."""
    mean = global_mean(x, axis_name)
    return maybe_pmean(jnp.mean((x - mean) ** 2), axis_name)
