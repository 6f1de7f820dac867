"""Invariants of train(): determinism, vmap, key types, sweeps trace once, metrics,
learning-rate schedule, chunked training. All use the small session config."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_trees_close, assert_trees_equal, to_numpy

import purejaxppo
from purejaxppo import METRIC_NAMES, Config

KEY = jax.random.key(0)


def max_param_diff(a, b) -> float:
    diffs = jax.tree.map(lambda x, y: float(jnp.max(jnp.abs(x - y))), a, b)
    return max(jax.tree.leaves(diffs))


def test_same_key_same_output(train_jit, small_config, small_out):
    again = train_jit.fn(small_config, jax.random.key(0))
    assert_trees_equal(again, small_out)


def test_different_key_different_output(train_jit, small_config, small_out):
    other = train_jit.fn(small_config, jax.random.key(1))
    assert max_param_diff(other.state.params, small_out.state.params) > 1e-4


def test_vmap_over_seeds_matches_single_runs(train_jit, train_seeds_jit, small_config):
    keys = jax.random.split(jax.random.key(42), 2)
    batched = train_seeds_jit.fn(small_config, keys)
    for i in range(2):
        single = train_jit.fn(small_config, keys[i])
        row = jax.tree.map(lambda x, i=i: x[i], batched)
        # Batched matmuls may round differently from unbatched ones; allclose, not equal.
        assert_trees_close(row, single, rtol=1e-4, atol=1e-5)
    assert not np.allclose(
        batched.state.params["params"]["value_head"]["kernel"][0],
        batched.state.params["params"]["value_head"]["kernel"][1],
    )


def test_legacy_prngkey_equals_typed_key(train_jit, small_config, small_out):
    legacy = jax.random.PRNGKey(0)
    # jax.random.key(0) wraps the same raw data as the legacy uint32[2] key.
    np.testing.assert_array_equal(jax.random.key_data(KEY), legacy)
    np.testing.assert_array_equal(
        jax.random.key_data(jax.random.wrap_key_data(legacy)), jax.random.key_data(KEY)
    )
    out = train_jit.fn(small_config, legacy)
    assert_trees_equal(out, small_out)
    # Both words of the raw key matter (key(0)'s data is all zeros, so check another).
    raw = jnp.array([1, 2], jnp.uint32)
    assert_trees_equal(
        train_jit.fn(small_config, raw), train_jit.fn(small_config, jax.random.wrap_key_data(raw))
    )


def test_hyperparameter_sweep_traces_once(train_jit, train_sweep_jit, small_config):
    keys = jax.random.split(jax.random.key(7), 2)
    sweep_a = Config.sweep(small_config, lr=[1e-3, 3e-4])
    sweep_b = Config.sweep(small_config, ent_coef=[0.0, 0.05])  # other field, same statics
    before = train_sweep_jit.counter.calls
    out_a = train_sweep_jit.fn(sweep_a, keys)
    out_b = train_sweep_jit.fn(sweep_b, keys)
    assert train_sweep_jit.counter.calls - before <= 1  # 0 if an earlier test traced it
    assert train_sweep_jit.counter.calls == 1

    # Each sweep point equals the corresponding single run.
    for sweep, out in [(sweep_a, out_a), (sweep_b, out_b)]:
        for i, config in enumerate(sweep.unstack()):
            single = train_jit.fn(config, keys[i])
            row = jax.tree.map(lambda x, i=i: x[i], out)
            assert_trees_close(row.metrics, single.metrics, rtol=1e-4, atol=1e-5)
            assert_trees_close(row.state.params, single.state.params, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out_a.metrics["lr"][:, 0], [1e-3, 3e-4], rtol=1e-6)


def test_traced_hyperparameters_do_not_retrace(train_jit, small_config, small_out):
    train_jit.fn(small_config, KEY)  # make sure this signature is compiled
    traces = train_jit.counter.calls
    a = train_jit.fn(small_config.replace(lr=1e-3), KEY)
    b = train_jit.fn(small_config.replace(lr=np.float32(2e-3), gamma=jnp.float32(0.9)), KEY)
    assert train_jit.counter.calls == traces
    # ...and the values really are used: different lr, different parameters.
    assert max_param_diff(a.state.params, small_out.state.params) > 1e-4
    assert max_param_diff(a.state.params, b.state.params) > 1e-4


def test_metric_shapes_and_names(small_config, small_out):
    n = small_config.num_updates
    assert n == 4
    assert set(small_out.metrics) == set(METRIC_NAMES)
    for name, value in small_out.metrics.items():
        assert value.shape == (n,), name
    for name in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_frac"):
        assert np.all(np.isfinite(small_out.metrics[name])), name
    assert int(small_out.state.update_step) == n


def test_env_steps_cumulative(small_config, small_out):
    # 64 transitions per update: 64, 128, 192, 256
    np.testing.assert_array_equal(small_out.metrics["env_steps"], [64, 128, 192, 256])


def test_episode_metrics_nan_exactly_when_no_episode_ended(small_out):
    m = to_numpy(small_out.metrics)
    assert np.all(m["episodes"] >= 0)
    np.testing.assert_array_equal(np.isnan(m["episode_return"]), m["episodes"] == 0)
    np.testing.assert_array_equal(np.isnan(m["episode_length"]), m["episodes"] == 0)
    ended = m["episodes"] > 0
    assert ended.any()  # random CartPole episodes last ~20 steps; 64 steps per update
    # CartPole pays 1 per step, so an episode's return equals its length.
    np.testing.assert_allclose(m["episode_return"][ended], m["episode_length"][ended])


def test_learning_rate_annealed_linearly(small_config, small_out):
    # lr_k = lr * (1 - k / num_updates), k = 0..3: first = lr, last = lr / 4
    lr = 2.5e-4
    np.testing.assert_allclose(
        small_out.metrics["lr"], [lr, 0.75 * lr, 0.5 * lr, 0.25 * lr], rtol=1e-6
    )


@pytest.fixture(scope="module")
def shared_constant_lr_out(small_config):
    # One extra compile covers two static switches: shared torso and no annealing.
    config = small_config.replace(shared_torso=True, lr_schedule="constant", lr=1e-3)
    return config, jax.jit(purejaxppo.train)(config, KEY)


def test_constant_learning_rate_without_annealing(shared_constant_lr_out):
    _, out = shared_constant_lr_out
    np.testing.assert_allclose(out.metrics["lr"], np.full(4, 1e-3), rtol=1e-6)


def test_shared_torso_runs(shared_constant_lr_out, small_out):
    _, out = shared_constant_lr_out
    names = set(out.state.params["params"])
    assert "torso" in names and "actor_torso" not in names and "critic_torso" not in names
    for name in ("policy_loss", "value_loss", "entropy", "approx_kl"):
        assert np.all(np.isfinite(out.metrics[name])), name
    # Fewer parameters than two separate torsos.
    count = lambda p: sum(x.size for x in jax.tree.leaves(p))
    assert count(out.state.params) < count(small_out.state.params)


def test_chunked_run_updates_equals_one_shot_train(small_config, small_out):
    init = jax.jit(purejaxppo.init)
    run = jax.jit(purejaxppo.run_updates, static_argnums=2)
    state = init(small_config, KEY)
    state, first = run(small_config, state, 2)
    state, second = run(small_config, state, 2)
    metrics = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), first, second)
    # Observed bitwise equal on CPU (same ops in the same order, the scan split in two);
    # asserted with allclose so that a different XLA fusion cannot break it.
    assert_trees_close(state, small_out.state, rtol=1e-5, atol=1e-6)
    assert_trees_close(metrics, small_out.metrics, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(metrics["env_steps"], small_out.metrics["env_steps"])
    np.testing.assert_array_equal(metrics["lr"], small_out.metrics["lr"])


@pytest.mark.parametrize(("precision", "hlo"), [("float32", "HIGHEST"), ("default", "DEFAULT")])
def test_matmul_precision_reaches_every_matmul(small_config, precision, hlo):
    # Config.matmul_precision sets every dot of training and of the acting policy
    # (XLA:CPU computes float32 either way; the GPU's TF32 is what it guards against).
    import re

    config = small_config.replace(matmul_precision=precision)
    texts = [jax.jit(purejaxppo.train).lower(config, KEY).as_text()]

    def act(key, obs):
        state = purejaxppo.init(config, key)
        return purejaxppo.make_policy(config, state, deterministic=True)(obs)

    texts.append(jax.jit(act).lower(KEY, jnp.zeros((3, 4))).as_text())
    for text in texts:
        found = set(re.findall(r"dot_general.*precision = \[(\w+), (\w+)\]", text))
        assert found == {(hlo, hlo)}, found
