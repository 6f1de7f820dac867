"""Shared fixtures: one small static config and its compiled functions, built once
per session so that the suite compiles each program only once. Plain helpers are in
helpers.py."""

from __future__ import annotations

import gc
import os
import shutil
import tempfile

import jax
import pytest
from helpers import SMALL, CallCounter, Compiled

import purejaxppo
from purejaxppo import Config

# Tests never write the user's persistent compilation cache (~/.cache/purejaxppo);
# a test that exercises the cache passes its own directory.
os.environ.setdefault("PUREJAXPPO_COMPILE_CACHE", "0")

# The xdist workers share one JAX compilation cache for this test run: a fresh
# temporary directory made by the controlling process, whose environment the workers
# inherit. A program both workers build (a session fixture, a config two modules
# train) is compiled once and loaded by the other; a loaded program is the one the
# compiler produced, so bitwise comparisons are unchanged.
_CACHE_VAR = "PUREJAXPPO_TEST_COMPILE_CACHE"
_OWNS_CACHE = _CACHE_VAR not in os.environ
if _OWNS_CACHE:
    os.environ[_CACHE_VAR] = tempfile.mkdtemp(prefix="purejaxppo-test-cache-")
jax.config.update("jax_compilation_cache_dir", os.environ[_CACHE_VAR])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def _map_count() -> int:
    with open("/proc/self/maps", "rb") as f:
        return sum(1 for _ in f)


def _map_limit() -> int:
    with open("/proc/sys/vm/max_map_count") as f:
        return int(f.read())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """At a test-module boundary, once its fixtures are torn down, drop JAX's
    compiled programs if the process holds more than half of Linux's memory-map
    limit. JAX keeps every executable of a module-level function (such as `train`)
    alive for the whole process, and each XLA:CPU program holds hundreds of memory
    maps: the full suite in one process crossed vm.max_map_count (65530) and
    segfaulted inside an XLA compile. Clearing only past half the limit keeps the
    session fixtures' programs shared across most modules (clearing at every module
    boundary made the suite recompile them over and over). Where /proc is missing
    (not Linux), the caches are dropped at every module boundary."""
    yield
    if nextitem is not None and getattr(nextitem, "module", None) is getattr(item, "module", None):
        return
    try:
        crowded = _map_count() > _map_limit() // 2
    except OSError:
        crowded = True
    if crowded:
        jax.clear_caches()
        gc.collect()


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


def pytest_sessionfinish(session, exitstatus):
    """The process that made the run's shared compilation cache removes it."""
    if _OWNS_CACHE:
        shutil.rmtree(os.environ[_CACHE_VAR], ignore_errors=True)
