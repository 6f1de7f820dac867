"""GRU and LSTM cells split in two: the input projection and the recurrence.

A cell's input term (x @ W_x + b for every gate) does not depend on the carry, so the
update computes it for a whole [T, b] sequence in one matmul before the time scan;
inside the scan, each step is a single matmul of the carry with every gate's
recurrent kernel stacked. flax's GRUCell and OptimizedLSTMCell compute the same
functions with one Dense per gate inside the step, which on XLA:CPU made the
gradient of a 128-step sequence about 1.8x slower (measured in
benchmarks/recurrent.py's notes). Initialisation follows flax's cells: LeCun-normal
input kernels, an orthogonal recurrent kernel per gate, zero biases.

    cell = GRU(size)
    projected = cell.project(x)            # [..., 3 * size], any leading axes
    carry, y = cell(carry, projected)      # one step
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from purejaxppo.nn.initializers import orthogonal


def per_gate_orthogonal(gates: int):
    """An initializer for a [size, gates * size] kernel: one orthogonal block per gate."""

    def init(key, shape, dtype=jnp.float32):
        size = shape[0]
        keys = jax.random.split(key, gates)
        return jnp.concatenate([orthogonal(1.0)(k, (size, size), dtype) for k in keys], axis=1)

    return init


class GRU(nn.Module):
    """r = σ(x_r + h W_r), z = σ(x_z + h W_z), n = tanh(x_n + r ⊙ (h W_n + b_n)),
    h' = (1 - z) ⊙ n + z ⊙ h (the GRU of Cho et al. as flax and PyTorch define it)."""

    size: int

    def setup(self):
        self.input = nn.Dense(3 * self.size, kernel_init=nn.initializers.lecun_normal())
        self.recurrent = nn.Dense(3 * self.size, use_bias=False, kernel_init=per_gate_orthogonal(3))
        self.recurrent_bias = self.param("recurrent_bias", nn.initializers.zeros, (self.size,))

    def project(self, x: jax.Array) -> jax.Array:
        return self.input(x)

    def __call__(self, h: jax.Array, projected: jax.Array) -> tuple[jax.Array, jax.Array]:
        x_r, x_z, x_n = jnp.split(projected, 3, axis=-1)
        h_r, h_z, h_n = jnp.split(self.recurrent(h), 3, axis=-1)
        r = jax.nn.sigmoid(x_r + h_r)
        z = jax.nn.sigmoid(x_z + h_z)
        n = jnp.tanh(x_n + r * (h_n + self.recurrent_bias))
        h = (1.0 - z) * n + z * h
        return h, h


class LSTM(nn.Module):
    """i, f, o = σ(·), g = tanh(·) of x W_x + h W_h + b; c' = f ⊙ c + i ⊙ g,
    h' = o ⊙ tanh(c'). The carry is (c, h); the output is h'."""

    size: int

    def setup(self):
        self.input = nn.Dense(4 * self.size, kernel_init=nn.initializers.lecun_normal())
        self.recurrent = nn.Dense(4 * self.size, use_bias=False, kernel_init=per_gate_orthogonal(4))

    def project(self, x: jax.Array) -> jax.Array:
        return self.input(x)

    def __call__(self, carry: tuple[jax.Array, jax.Array], projected: jax.Array) -> tuple[Any, Any]:
        c, h = carry
        i, f, g, o = jnp.split(projected + self.recurrent(h), 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (c, h), h


def make_cell(kind: str, size: int) -> nn.Module:
    """The cell of `Config.recurrent`: GRU, or LSTM (carry (c, h)), of width `size`."""
    return GRU(size) if kind == "gru" else LSTM(size)
