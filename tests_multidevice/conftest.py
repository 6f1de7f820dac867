"""Multi-device tests: 4 fake CPU devices, so they run in their own pytest invocation
(the device count is fixed when JAX starts):

    JAX_NUM_CPU_DEVICES=4 pytest tests_multidevice
"""

from __future__ import annotations

import os

os.environ.setdefault("JAX_NUM_CPU_DEVICES", "4")
os.environ.setdefault("PUREJAXPPO_COMPILE_CACHE", "0")

import jax
import numpy as np
import pytest

from purejaxppo import Config

# 8 envs (2 per device on 4 devices) x 16 steps, 4 updates, observation normalisation
# on so that the normaliser's cross-device merge is exercised.
SMALL = dict(
    num_envs=8,
    num_steps=16,
    num_minibatches=2,
    update_epochs=2,
    total_timesteps=8 * 16 * 4,
    normalize_obs=True,
)


@pytest.fixture(scope="session")
def devices() -> list:
    found = jax.devices()
    if len(found) < 4:
        pytest.fail(
            f"these tests need 4 devices, JAX sees {len(found)}: run them in their own "
            "invocation with JAX_NUM_CPU_DEVICES=4 set before JAX starts"
        )
    return found[:4]


@pytest.fixture(scope="session")
def small_config() -> Config:
    return Config(**SMALL)


def host(tree):
    """numpy copy of a pytree of (possibly sharded) arrays, keys as key data."""

    def leaf(x):
        if hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        return np.asarray(x)

    return jax.tree.map(leaf, tree)


def assert_close(a, b, rtol=1e-5, atol=1e-6):
    a, b = host(a), host(b)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)
