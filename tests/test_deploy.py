"""Deployable policies: ONNX (run by onnxruntime) and jax.export StableHLO files act as
`load_policy(dir, deterministic=True)` does, within 1e-5, on random observations, for
every kind of observation and action the trainer handles, with a dynamic batch axis;
bad arguments fail before anything is traced or written."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejaxppo
from purejaxppo import Config
from purejaxppo.acting.deploy import (
    deploy_inputs,
    export_onnx,
    export_stablehlo,
    load_stablehlo,
)
from purejaxppo.acting.export import load_policy, save_policy
from purejaxppo.cli import main
from purejaxppo.core.normalize import RunningStats

ort = pytest.importorskip("onnxruntime")

CASES = {
    "cartpole": Config(),
    "pendulum-tanh-normalised": Config(
        env="Pendulum-v1", continuous_dist="tanh_gaussian", normalize_obs=True
    ),
    "pendulum-clipped": Config(env="Pendulum-v1", normalize_obs=True),
    "pendulum-state-std": Config(env="Pendulum-v1", state_dependent_std=True),
    "minatar-cnn": Config(env="Breakout-MinAtar"),
    "masked-dict": Config(env="probe/MaskedActions"),
    "multidiscrete": Config(env="probe/MultiDiscreteTarget"),
    "privileged-dict-normalised": Config(
        env="probe/PrivilegedReward", policy_obs_key="state", normalize_obs=True
    ),
    "pixels-uint8": Config(env="probe/PixelActionReward"),
    "gru": Config(env="probe/MemoryCue", recurrent="gru"),
    "lstm-normalised": Config(recurrent="lstm", normalize_obs=True),
}


def _perturbed(tree, key, scale):
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    return treedef.unflatten(
        [
            x + scale * jax.random.normal(k, x.shape, x.dtype)
            for x, k in zip(leaves, keys, strict=True)
        ]
    )


def _random_stats(stats, key):
    """Observation statistics far from the identity, so the baked-in normaliser shows."""
    if isinstance(stats, RunningStats):
        k1, k2 = jax.random.split(key)
        return RunningStats(
            mean=jax.random.normal(k1, stats.mean.shape),
            var=jax.random.uniform(k2, stats.var.shape, minval=0.2, maxval=4.0),
            count=jnp.float32(1000.0),
        )
    return {
        k: _random_stats(s, jax.random.fold_in(key, i)) for i, (k, s) in enumerate(stats.items())
    }


def _policy(config, tmp_path):
    """A saved and reloaded policy with random weights (logits far from ties) and, when
    the config normalises, random observation statistics."""
    state = purejaxppo.init(config, jax.random.key(0))
    params = _perturbed(state.params, jax.random.key(1), 0.3)
    stats = state.obs_stats
    if config.normalize_obs:
        stats = _random_stats(stats, jax.random.key(2))
    state = state._replace(params=params, obs_stats=stats)
    return load_policy(save_policy(tmp_path / "policy", config, state), deterministic=True)


def _inputs(policy, batch, seed):
    rng = np.random.default_rng(seed)
    names, shapes = deploy_inputs(policy, batch)
    xs = []
    for s in shapes:
        if s.dtype == jnp.bool_:
            x = rng.random(s.shape) < 0.5
            if names[len(xs)] == "action_mask":
                x[:, 0] = True  # at least one legal action per row
        elif s.dtype == jnp.uint8:
            x = rng.integers(0, 256, s.shape, dtype=np.uint8)
        else:
            x = (2.0 * rng.normal(size=s.shape)).astype(np.float32)
        xs.append(x)
    return names, xs


def _expected(policy, names, xs):
    """What the loaded policy does with the same inputs: [action] or [action, *carry]."""
    num_obs = len(names) - (
        1 + len(jax.tree.leaves(policy.initial_carry())) if policy.recurrent else 0
    )
    obs = (
        xs[0] if not policy.spec.dict_obs else dict(zip(names[:num_obs], xs[:num_obs], strict=True))
    )
    if not policy.recurrent:
        return [np.asarray(policy(obs))]
    treedef = jax.tree.structure(policy.initial_carry())
    carry = policy.reset(jax.tree.unflatten(treedef, xs[num_obs + 1 :]), xs[num_obs])
    action, carry = policy(obs, carry)
    return [np.asarray(action), *map(np.asarray, jax.tree.leaves(carry))]


def _assert_close(got, expected):
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        g = np.asarray(g)
        assert g.shape == e.shape and g.dtype == e.dtype
        if np.issubdtype(e.dtype, np.integer):
            np.testing.assert_array_equal(g, e)
        else:
            np.testing.assert_allclose(g, e, rtol=0, atol=1e-5)


@pytest.mark.parametrize("case", list(CASES))
def test_onnx_and_stablehlo_act_as_the_loaded_policy(case, tmp_path):
    policy = _policy(CASES[case], tmp_path)
    onnx_path = export_onnx(policy, tmp_path / "policy.onnx")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    hlo = load_stablehlo(export_stablehlo(policy, tmp_path / "policy.jax"))
    for batch, seed in ((7, 0), (1, 1)):  # one file, any batch size
        names, xs = _inputs(policy, batch, seed)
        assert [i.name for i in session.get_inputs()] == names
        expected = _expected(policy, names, xs)
        _assert_close(session.run(None, dict(zip(names, xs, strict=True))), expected)
        out = hlo(*xs)
        _assert_close(list(out) if policy.recurrent else [out], expected)
    if policy.recurrent:  # episode_start resets the memory: equal to zero carries
        names, xs = _inputs(policy, 3, 2)
        reset = [*xs]
        reset[names.index("episode_start")] = np.ones(3, bool)
        zeros = [*xs]
        zeros[names.index("episode_start")] = np.zeros(3, bool)
        for i, name in enumerate(names):
            if name.startswith("carry_"):
                zeros[i] = np.zeros_like(xs[i])
        _assert_close(
            session.run(None, dict(zip(names, reset, strict=True))), _expected(policy, names, zeros)
        )


def test_mlir_text_and_lowering_for_accelerators(tmp_path):
    policy = _policy(CASES["cartpole"], tmp_path)
    text = export_stablehlo(policy, tmp_path / "policy.mlir").read_text()
    assert "stablehlo." in text and "func.func public @main" in text
    exported = jax.export.deserialize(
        bytearray(export_stablehlo(policy, tmp_path / "p.jax").read_bytes())
    )
    assert exported.platforms == ("cpu", "cuda", "tpu")  # lowered without those devices


def test_bad_arguments_fail_before_writing(tmp_path):
    policy = _policy(CASES["cartpole"], tmp_path)
    with pytest.raises(ValueError, match=r"export_onnx: path='.*policy\.jax' must end in \.onnx"):
        export_onnx(policy, tmp_path / "policy.jax")
    with pytest.raises(ValueError, match=r"opset=9 must be an integer >= 13"):
        export_onnx(policy, tmp_path / "policy.onnx", opset=9)
    with pytest.raises(TypeError, match=r"policy must be a purejaxppo Policy"):
        export_stablehlo(object(), tmp_path / "policy.jax")
    with pytest.raises(ValueError, match=r"platforms=\('gpu',\) must name some of"):
        export_stablehlo(policy, tmp_path / "policy.jax", platforms=["gpu"])
    with pytest.raises(FileNotFoundError, match=r"does not exist"):
        export_onnx(tmp_path / "missing", tmp_path / "policy.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy"]


def test_cli_exports_a_policy_directory(tmp_path, capsys):
    policy = _policy(CASES["pendulum-tanh-normalised"], tmp_path)
    assert main(["export", str(tmp_path / "policy"), "--out", str(tmp_path / "p.onnx")]) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "policy"), "--format", "stablehlo"]) == 0
    names, xs = _inputs(policy, 4, 0)
    session = ort.InferenceSession(str(tmp_path / "p.onnx"), providers=["CPUExecutionProvider"])
    expected = _expected(policy, names, xs)
    _assert_close(session.run(None, dict(zip(names, xs, strict=True))), expected)
    _assert_close([load_stablehlo(tmp_path / "policy" / "policy.jax")(*xs)], expected)
    assert main(["export", str(tmp_path / "policy"), "--format", "mlir", "--out", "x.jax"]) == 2
    assert "--format mlir writes a .mlir file" in capsys.readouterr().err
