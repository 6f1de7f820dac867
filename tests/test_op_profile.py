"""benchmarks/op_profile.py sorts the ops XLA:CPU runs by kind, so its shares say how
much of an update is matmuls, RNG, shuffling, data movement and the rest."""

from __future__ import annotations

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import pytest

import purejaxppo

SCRIPT = pathlib.Path(__file__).parent.parent / "benchmarks" / "op_profile.py"


@pytest.fixture(scope="module")
def op_profile():
    spec = importlib.util.spec_from_file_location("op_profile", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ops_are_sorted_by_kind(op_profile):
    def program(x, key):
        h = jnp.tanh(x @ x)  # a matmul, then an elementwise op
        order = jnp.sort(h[:, 0])
        noise = jax.random.uniform(key, (64,))  # a rolled threefry loop on the CPU
        rows = jax.lax.fori_loop(0, 3, lambda i, a: a.at[i].set(a[i] + 1.0), h)
        return h.sum(1) + noise, order, rows

    x = jnp.ones((64, 64))
    text = jax.jit(program).lower(x, jax.random.key(0)).compile().as_text()
    kinds = op_profile.classify_ops(text)
    found = set(kinds.values())
    assert {"matmul", "rng", "sort/gather/scatter", "container"} <= found, kinds
    assert found <= set(op_profile.KINDS) | {"container"}
    # The threefry loop's body, carry copies included, counts as RNG, not as copies.
    assert sum(k == "rng" for k in kinds.values()) >= 3


@pytest.mark.slow
def test_a_profile_accounts_for_every_op_kind(op_profile):
    config = purejaxppo.Config(env="CartPole-v1", total_timesteps=4096, num_envs=4)
    profile = op_profile.op_profile(config, 2, top=5)
    if jax.default_backend() != "cpu":
        assert "skipped" in profile
        return
    assert set(profile["share"]) == set(op_profile.KINDS)
    assert abs(sum(profile["share"].values()) - 1) < 0.01
    assert profile["share"]["matmul"] > 0 and profile["share"]["rng"] > 0
    assert profile["worker_threads"] >= 1 and 0 < profile["thread_busy_fraction"] <= 1
    assert len(profile["top_ops"]) == 5
    assert "op profile (2 seeds" in op_profile.format_profile(profile)
