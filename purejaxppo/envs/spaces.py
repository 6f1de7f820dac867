"""Action spaces beyond gymnax's own.

`MultiDiscrete(nvec)` is a vector of K independent discrete sub-actions, sub-action k
taking values in [0, nvec[k]). An env returns it from `action_space()` to get a
MultiDiscrete policy: one categorical head per sub-action, the K log-probabilities
summed. Actions reach the env's `step` as int32 [K] (int32 [..., K] when batched).

The class follows gymnax's space protocol (`shape`, `dtype`, `sample(rng)`,
`contains(x)`) and imports only jax, so it can be used without gymnax.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import jax
import jax.numpy as jnp

__all__ = ["MultiDiscrete"]


def _validate_nvec(nvec: object) -> tuple[int, ...]:
    message = f"MultiDiscrete: nvec must be a non-empty sequence of ints >= 1, got {nvec!r}"
    if isinstance(nvec, str | bytes):
        raise ValueError(message)
    try:
        items = list(nvec)  # a tuple, list, numpy or jax array
    except TypeError:
        raise ValueError(message) from None
    values = []
    for n in items:
        if isinstance(n, bool):
            raise ValueError(message)
        try:
            value = operator.index(n)  # ints and integer numpy/jax scalars; not floats
        except TypeError:
            raise ValueError(message) from None
        if value < 1:
            raise ValueError(message)
        values.append(value)
    if not values:
        raise ValueError(message)
    return tuple(values)


class MultiDiscrete:
    """K independent discrete sub-actions; sub-action k is an int in [0, nvec[k]).

    Attributes: `nvec` (tuple of python ints), `shape == (K,)`, `dtype == int32`.
    Instances with equal `nvec` compare equal and hash alike.
    """

    def __init__(self, nvec: Sequence[int]):
        self.nvec: tuple[int, ...] = _validate_nvec(nvec)
        self.shape: tuple[int] = (len(self.nvec),)
        self.dtype = jnp.int32

    @property
    def num_components(self) -> int:
        """K, the number of sub-actions."""
        return len(self.nvec)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.nvec == other.nvec

    def __hash__(self) -> int:
        return hash((type(self), self.nvec))

    def __repr__(self) -> str:
        return f"MultiDiscrete(nvec={self.nvec!r})"

    def sample(self, rng: jax.Array) -> jax.Array:
        """Uniform int32 [K]: entry k uniform in [0, nvec[k])."""
        high = jnp.asarray(self.nvec, jnp.int32)
        return jax.random.randint(rng, self.shape, 0, high, dtype=jnp.int32)

    def contains(self, x: jax.Array) -> jax.Array:
        """Bool scalar: x has shape (K,), integral values, and 0 <= x[k] < nvec[k]."""
        x = jnp.asarray(x)
        if x.shape != self.shape:
            return jnp.asarray(False)
        if jnp.issubdtype(x.dtype, jnp.bool_) or jnp.issubdtype(x.dtype, jnp.complexfloating):
            return jnp.asarray(False)
        integral = jnp.all(x == jnp.floor(x)) if jnp.issubdtype(x.dtype, jnp.floating) else True
        high = jnp.asarray(self.nvec)
        in_range = jnp.all((x >= 0) & (x < high))
        return jnp.logical_and(integral, in_range)
