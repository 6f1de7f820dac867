"""nn/initializers.py (re-exported by nn/networks.py): the hand-written orthogonal
initialiser has orthonormal columns (rows for a wide matrix), the requested scale, and
the distribution of flax's QR-based initialiser. The initialisers run one key at a
time or under `lax.map` (a scan), never under vmap, which is the case the hand-written
version exists for."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.linen import initializers as flax_init

from purejaxppo.nn import initializers
from purejaxppo.nn.networks import orthogonal

SHAPES = [(64, 16), (16, 64), (12, 12), (3, 3, 4, 8)]  # tall, wide, square, conv kernel


def test_networks_reexports_the_initializer():
    assert orthogonal is initializers.orthogonal


@pytest.mark.parametrize("shape", SHAPES)
def test_orthonormal_columns_or_rows(shape):
    w = np.asarray(orthogonal(1.0)(jax.random.key(0), shape), np.float64)
    assert w.shape == shape and w.dtype == np.float64
    m = w.reshape(-1, shape[-1])  # flax's convention: the last axis is the column axis
    rows, cols = m.shape
    gram = m.T @ m if rows >= cols else m @ m.T  # the smaller of the two is the identity
    np.testing.assert_allclose(gram, np.eye(min(rows, cols)), atol=2e-6)


@pytest.mark.parametrize("scale", [0.01, 1.0, math.sqrt(2.0)])
def test_scale_multiplies_an_orthonormal_matrix(scale):
    key = jax.random.key(1)
    w = np.asarray(orthogonal(scale)(key, (32, 8)), np.float64)
    # Every singular value equals the scale, and the matrix is scale * orthogonal(1).
    np.testing.assert_allclose(np.linalg.svd(w, compute_uv=False), scale, rtol=2e-6)
    unit = np.asarray(orthogonal(1.0)(key, (32, 8)), np.float64)
    np.testing.assert_allclose(w, scale * unit, rtol=1e-6, atol=1e-9)


def test_dtype_is_honoured():
    w = orthogonal(1.0)(jax.random.key(2), (8, 4), jnp.bfloat16)
    assert w.dtype == jnp.bfloat16


@pytest.mark.parametrize("shape", SHAPES)
def test_same_key_gives_flax_matrix(shape):
    """Both orthonormalise the same Gaussian draw: QR with the signs of diag(R) made
    positive is Gram-Schmidt, so one key gives one matrix (up to float32 rounding)."""
    key = jax.random.key(3)
    ours = orthogonal(0.5)(key, shape)
    theirs = flax_init.orthogonal(0.5)(key, shape)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def draws(init, n: int, shape=(4, 3)) -> np.ndarray:
    """n matrices from n keys, one at a time inside a scan (`lax.map`, not vmap)."""
    keys = jax.random.split(jax.random.key(4), n)
    return np.asarray(jax.jit(lambda ks: jax.lax.map(lambda k: init(k, shape), ks))(keys))


@pytest.fixture(scope="module")
def ours_and_flax():
    n = 4000
    ours = draws(orthogonal(1.0), n)
    # Other keys for flax's, so the comparison is between two independent samples.
    theirs = draws(lambda k, s: flax_init.orthogonal(1.0)(jax.random.fold_in(k, 1), s), n)
    return ours, theirs


def test_distribution_matches_haar_and_flax(ours_and_flax):
    """A Haar-random 4x3 matrix with orthonormal columns: every entry has mean 0 and
    second moment 1/4 (a unit column in R^4), and q_00^2 ~ Beta(1/2, 3/2). Two-sample
    KS tests against flax's initialiser on an entry and on a projection."""
    from scipy import stats

    ours, theirs = ours_and_flax
    n = ours.shape[0]
    # Entry moments: mean 0 with std sqrt(1/4 / n) = 0.0079; E[q^2] = 0.25 with the
    # std of q^2 (Beta(1/2, 3/2) has variance 0.075) / sqrt(n) = 0.0043.
    np.testing.assert_allclose(ours.mean(0), 0.0, atol=5 * math.sqrt(0.25 / n))
    np.testing.assert_allclose((ours**2).mean(0), 0.25, atol=5 * math.sqrt(0.075 / n))
    assert stats.kstest(ours[:, 0, 0] ** 2, stats.beta(0.5, 1.5).cdf).pvalue > 1e-3
    # A fixed unit projection of the whole matrix, compared with flax's by two-sample KS.
    direction = np.random.default_rng(0).normal(size=(4, 3))
    direction /= np.linalg.norm(direction)
    for stat in (lambda q: q[:, 0, 0], lambda q: q[:, 3, 2], lambda q: (q * direction).sum((1, 2))):
        assert stats.ks_2samp(stat(ours), stat(theirs)).pvalue > 1e-3
