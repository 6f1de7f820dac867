"""The minibatch shuffle is a uniformly random permutation."""

import jax
import numpy as np
import pytest

from purejaxppo.core.learner import random_permutation


@pytest.mark.parametrize("n", [1, 2, 7, 512, 1000, 70_000])
def test_random_permutation_is_a_permutation(n):
    # 70_000 > 2**16 takes the jax.random.permutation fallback.
    perm = np.asarray(random_permutation(jax.random.key(3), n))
    assert perm.dtype == np.int32
    np.testing.assert_array_equal(np.sort(perm), np.arange(n))


def test_random_permutation_is_uniform_over_positions():
    # 4000 draws of a permutation of 8: each element lands in each position with
    # probability 1/8, so each count is ~500 with std sqrt(4000*1/8*7/8) ~ 21.
    keys = jax.random.split(jax.random.key(0), 4000)
    perms = np.asarray(jax.jit(jax.vmap(lambda k: random_permutation(k, 8)))(keys))
    counts = np.zeros((8, 8))
    for position in range(8):
        counts[:, position] = np.bincount(perms[:, position], minlength=8)
    assert np.abs(counts - 500).max() < 6 * 21
    # Different keys give different orders, and the identity is not favoured.
    assert len({tuple(p) for p in perms[:100]}) > 95
