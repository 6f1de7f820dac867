"""Running mean and variance owned by the learner (observation and reward scaling).

Statistics merge with the parallel algorithm of Chan, Golub and LeVeque (1979): two
summaries (count, mean, M2) combine exactly, so a whole batch is folded in at once and
per-device summaries combine across a mapped `axis_name` to the statistics of the
global batch. The variance is the population variance (numpy's `var`, ddof=0).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

NORM_EPS = 1e-8  # added to the variance before the square root


class RunningStats(NamedTuple):
    """Mean and variance of everything merged so far, per feature."""

    mean: jax.Array  # [*feature_shape] float32
    var: jax.Array  # [*feature_shape] float32 (population variance)
    count: jax.Array  # float32 scalar: number of samples merged


def init_stats(feature_shape: tuple[int, ...] = ()) -> RunningStats:
    """Empty statistics: count 0, and mean 0 / var 1 so that normalising with them is
    the identity until the first merge."""
    return RunningStats(
        mean=jnp.zeros(feature_shape, jnp.float32),
        var=jnp.ones(feature_shape, jnp.float32),
        count=jnp.zeros((), jnp.float32),
    )


def _psum(x, axis_name):
    return x if axis_name is None else jax.lax.psum(x, axis_name)


def batch_moments(x: jax.Array, feature_ndim: int, axis_name=None) -> RunningStats:
    """Mean, variance and count of `x` over its leading axes (all but the last
    `feature_ndim`), over the whole batch across `axis_name` when given."""
    x = x.astype(jnp.float32)
    axes = tuple(range(x.ndim - feature_ndim))
    local_n = jnp.asarray(x.size // max(1, _feature_size(x, feature_ndim)), jnp.float32)
    n = _psum(local_n, axis_name)
    mean = _psum(jnp.sum(x, axis=axes), axis_name) / n
    m2 = _psum(jnp.sum((x - mean) ** 2, axis=axes), axis_name)
    return RunningStats(mean=mean, var=m2 / n, count=n)


def _feature_size(x: jax.Array, feature_ndim: int) -> int:
    size = 1
    for d in x.shape[x.ndim - feature_ndim :]:
        size *= d
    return size


def merge(a: RunningStats, b: RunningStats) -> RunningStats:
    """Statistics of the union of the samples summarised by `a` and `b`."""
    total = a.count + b.count
    safe_total = jnp.maximum(total, 1.0)
    weight_b = b.count / safe_total
    delta = b.mean - a.mean
    mean = a.mean + delta * weight_b
    m2 = a.var * a.count + b.var * b.count + delta**2 * a.count * weight_b
    var = jnp.where(total > 0, m2 / safe_total, a.var)
    return RunningStats(mean=mean, var=var, count=total)


def update(stats: RunningStats, x: jax.Array, axis_name=None) -> RunningStats:
    """Fold a batch `x` [..., *feature_shape] into `stats` (merged across `axis_name`)."""
    return merge(stats, batch_moments(x, stats.mean.ndim, axis_name))


def normalize(stats: RunningStats, x: jax.Array, clip=None) -> jax.Array:
    """(x - mean) / sqrt(var + eps), clipped to +-clip when `clip` is given (inf: no clip)."""
    z = (x - stats.mean) * jax.lax.rsqrt(stats.var + NORM_EPS)
    if clip is not None:
        z = jnp.clip(z, -clip, clip)
    return z


def scale(stats: RunningStats, x: jax.Array, clip=None) -> jax.Array:
    """x / sqrt(var + eps) without centring (reward scaling), optionally clipped."""
    z = x * jax.lax.rsqrt(stats.var + NORM_EPS)
    if clip is not None:
        z = jnp.clip(z, -clip, clip)
    return z
