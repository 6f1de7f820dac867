"""Weight initialisers (pure JAX; no LAPACK)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def orthogonal(scale: float = 1.0):
    """Orthogonal initializer (Saxe et al., 2014) in plain jnp ops, without LAPACK.

    Same distribution as `flax.linen.initializers.orthogonal` /
    `jax.nn.initializers.orthogonal` (a Haar-random matrix with orthonormal columns,
    or rows for a wide matrix, times `scale`; tests/test_networks.py compares the two),
    computed by Gram-Schmidt on a Gaussian matrix instead of by a QR decomposition.

    Why not flax's: the project initialises one network per seed under `vmap`, which
    turns jax's `jnp.linalg.qr` into a batched LAPACK QR. On XLA:CPU a batched QR is
    a sequential loop over the batch inside one custom call (jax-ml/jax#15803,
    https://github.com/jax-ml/jax/issues/15803; on GPU the Q part is not batched
    either, jax-ml/jax#8542, https://github.com/jax-ml/jax/issues/8542), and with
    jaxlib 0.10 on CPU two such QRs in flight at once were seen to deadlock the
    intra-op thread pool (observed in this project; no upstream report of that exact
    hang was found; the closest is a LAPACK-style kernel re-entering XLA:CPU's Eigen
    pool, https://github.com/PyAutoLabs/PyAutoFit/issues/1530). jax's initializer
    itself comes from https://github.com/jax-ml/jax/pull/1322 (QR with the sign of
    diag(R) fixed, which is what makes Q Haar-distributed).
    """

    def init(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
        rows, cols = math.prod(shape[:-1]), shape[-1]
        tall = (max(rows, cols), min(rows, cols))
        q = orthonormal_columns(jax.random.normal(key, tall, jnp.float32))
        if rows < cols:
            q = q.T
        return (scale * q).reshape(shape).astype(dtype)

    return init


def orthonormal_columns(a: jax.Array) -> jax.Array:
    """Q of the thin QR of a tall [m, n] matrix with positive diag(R), by classical
    Gram-Schmidt applied twice per column ("twice is enough" for float32)."""
    n = a.shape[1]

    def add_column(j, q):
        mask = (jnp.arange(n) < j).astype(a.dtype)  # columns already in the basis
        v = a[:, j]
        for _ in range(2):
            v = v - q @ (mask * (q.T @ v))
        return q.at[:, j].set(v / jnp.linalg.norm(v))

    return jax.lax.fori_loop(0, n, add_column, jnp.zeros_like(a))
