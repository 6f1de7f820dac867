"""Helpers shared by the multi-device tests (fixtures are in conftest.py)."""

from __future__ import annotations

import jax
import numpy as np

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
