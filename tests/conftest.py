"""Shared fixtures: one small static config and its compiled functions, built once
per session so that the suite compiles each program only once."""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejaxppo
from purejaxppo import Config

# Tests never write the user's persistent compilation cache (~/.cache/purejaxppo);
# a test that exercises the cache passes its own directory.
os.environ.setdefault("PUREJAXPPO_COMPILE_CACHE", "0")

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


@pytest.fixture(scope="session")
def small_config() -> Config:
    return Config(**SMALL)


@pytest.fixture(scope="session")
def train_jit() -> Compiled:
    """jax.jit(train), counting traces."""
    counter = CallCounter(purejaxppo.train)
    return Compiled(jax.jit(counter), counter)


@pytest.fixture(scope="session")
def train_seeds_jit() -> Compiled:
    """jax.jit(jax.vmap(train, in_axes=(None, 0))): one config, a batch of keys."""
    counter = CallCounter(purejaxppo.train)
    return Compiled(jax.jit(jax.vmap(counter, in_axes=(None, 0))), counter)


@pytest.fixture(scope="session")
def train_sweep_jit() -> Compiled:
    """jax.jit(jax.vmap(train)): a batched (swept) config and a batch of keys."""
    counter = CallCounter(purejaxppo.train)
    return Compiled(jax.jit(jax.vmap(counter)), counter)


@pytest.fixture(scope="session")
def small_out(train_jit, small_config) -> purejaxppo.TrainOutput:
    """The reference run: small_config with jax.random.key(0)."""
    return jax.block_until_ready(train_jit.fn(small_config, jax.random.key(0)))
