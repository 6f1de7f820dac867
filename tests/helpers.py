"""Helpers shared by the test modules: the small config, trace counters and tree
comparisons. Fixtures live in conftest.py; this module is imported by name."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

# 4 envs x 16 steps = 64 transitions per update, 2 minibatches of 32, 2 epochs,
# 4 updates: large enough to exercise every code path, small enough to run in ms.
SMALL = dict(num_envs=4, num_steps=16, num_minibatches=2, update_epochs=2, total_timesteps=256)


class CallCounter:
    """Wraps a function and counts Python-side calls; under jit that is the number
    of traces."""

    def __init__(self, fn):
        self.fn = fn
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


class Compiled(NamedTuple):
    fn: Any  # the jitted function
    counter: CallCounter  # counter.calls == number of traces so far


def to_numpy(tree: Any) -> Any:
    """Host copy of a pytree, typed PRNG keys replaced by their raw key data."""

    def leaf(x):
        if jnp.issubdtype(jnp.asarray(x).dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        return np.asarray(x)

    return jax.tree.map(leaf, tree)


def assert_trees_equal(a: Any, b: Any) -> None:
    """Bitwise equality of two pytrees (NaN == NaN)."""
    a, b = to_numpy(a), to_numpy(b)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def assert_trees_close(a: Any, b: Any, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    a, b = to_numpy(a), to_numpy(b)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)
