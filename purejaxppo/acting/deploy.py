"""Deployable policies: one file that acts outside purejaxppo, as ONNX or StableHLO.

    policy = load_policy("runs/cartpole/policy")
    export_onnx(policy, "cartpole.onnx")            # onnxruntime, C++, C#, the browser...
    export_stablehlo(policy, "cartpole.jax")        # jax.export: any JAX, no purejaxppo
    act = load_stablehlo("cartpole.jax")            # act(obs) -> action

Both files hold the deterministic policy of `load_policy(dir, deterministic=True)`: the
observation normaliser (the saved statistics, frozen), the network, the action's mode
(argmax, masked by the action mask where the env has one; the Gaussian's mean), and the
continuous action squashed or clipped into the env's bounds. The batch axis is
dynamic: inputs are [B, *the env's observation shape], outputs [B, ...].

Inputs, in order (the ONNX graph's input names):
- one observation array: "obs" [B, *obs_shape], float32 (images in their own dtype);
- a dict observation: one input per key the policy reads, named by the key (the action
  mask, a bool [B, n], among them when the env has one);
- recurrent policies, then: "episode_start" bool [B] (True resets that row's memory
  to zeros before acting) and the memory "carry_0", "carry_1", ... float32 [B, size]
  (zeros at the start; `jax.tree.leaves(policy.initial_carry((B,)))` order).
Outputs: "action" (int32 [B] discrete, [B, K] MultiDiscrete, float32 [B, A]
continuous), and for recurrent policies the memory after the step, "carry_out_0", ...

ONNX goes through jax2onnx (`pip install 'purejaxppo[onnx]'`); StableHLO through
JAX's own `jax.export`, serialised with its calling convention (read it back with
`jax.export.deserialize` or `load_stablehlo`), or as MLIR text for a `.mlir` path.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from purejaxppo.acting.export import Policy, load_policy
from purejaxppo.acting.policy import policy_keys
from purejaxppo.io.tables import atomic_write

DEFAULT_PLATFORMS = ("cpu", "cuda", "tpu")


def deploy_inputs(policy: Policy, batch: Any) -> tuple[list[str], list[jax.ShapeDtypeStruct]]:
    """(names, shapes) of the exported function's inputs, with batch axis `batch` (an
    int or a symbolic dimension)."""
    spec = policy.spec
    names, shapes = [], []
    for key in _observed_keys(policy):
        leaf = spec.leaf(key)
        dtype = jnp.float32 if leaf.kind == "vector" else jnp.dtype(leaf.dtype)
        names.append("obs" if key is None else key)
        shapes.append(jax.ShapeDtypeStruct((batch, *leaf.env_shape), dtype))
    if policy.recurrent:
        names.append("episode_start")
        shapes.append(jax.ShapeDtypeStruct((batch,), jnp.bool_))
        for i, c in enumerate(jax.tree.leaves(policy.initial_carry())):
            names.append(f"carry_{i}")
            shapes.append(jax.ShapeDtypeStruct((batch, *c.shape), c.dtype))
    return names, shapes


def deploy_function(policy: Policy) -> tuple[Callable[..., Any], list[str], list[str]]:
    """(fn, input names, output names): `fn(*inputs) -> tuple of outputs`, the batched
    deterministic policy with its arrays baked in as constants."""
    act = Policy(policy.config, policy.spec, policy.params, policy.obs_stats, True)
    spec = policy.spec
    names, _ = deploy_inputs(policy, 1)
    num_obs = len(_observed_keys(policy))
    obs_keys = names[:num_obs]

    def observation(xs):
        return xs[0] if not spec.dict_obs else dict(zip(obs_keys, xs, strict=True))

    if not act.recurrent:

        def fn(*xs):
            return (act(observation(xs)),)

        return fn, names, ["action"]

    treedef = jax.tree.structure(policy.initial_carry())

    def fn_recurrent(*xs):
        obs, episode_start, carry = xs[:num_obs], xs[num_obs], xs[num_obs + 1 :]
        carry = act.reset(jax.tree.unflatten(treedef, carry), episode_start)
        action, carry = act(observation(obs), carry)
        return (action, *jax.tree.leaves(carry))

    outputs = ["action"] + [f"carry_out_{i}" for i in range(treedef.num_leaves)]
    return fn_recurrent, names, outputs


def _observed_keys(policy: Policy) -> tuple[str | None, ...]:
    """The observation leaves the policy reads: (None,) for one array."""
    spec = policy.spec
    return policy_keys(policy.config, spec) if spec.dict_obs else (None,)


def _as_policy(policy: Policy | str | os.PathLike, what: str) -> Policy:
    if isinstance(policy, (str, os.PathLike)):
        return load_policy(policy, deterministic=True)
    if not isinstance(policy, Policy):
        raise TypeError(
            f"{what}: policy must be a purejaxppo Policy (load_policy) or the directory "
            f"save_policy wrote, got {type(policy).__name__}"
        )
    return policy


def _check_suffix(path: Path, suffixes: Sequence[str], what: str) -> None:
    if path.suffix.lower() not in suffixes:
        raise ValueError(f"{what}: path={str(path)!r} must end in {' or '.join(suffixes)}")


def export_onnx(
    policy: Policy | str | os.PathLike, path: str | os.PathLike, opset: int = 17
) -> Path:
    """Write the deterministic policy as an ONNX model at `path` (.onnx); returns it.

    `policy` is a loaded Policy or a policy directory. The graph's inputs and outputs
    are named as the module docstring says, with a dynamic batch axis "B". Needs
    jax2onnx (`pip install 'purejaxppo[onnx]'`); onnxruntime runs the result.
    """
    path = Path(path)
    _check_suffix(path, (".onnx",), "export_onnx")
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < 13:
        raise ValueError(f"export_onnx: opset={opset!r} must be an integer >= 13")
    policy = _as_policy(policy, "export_onnx")
    if importlib.util.find_spec("jax2onnx") is None:
        raise ImportError("export_onnx needs jax2onnx: pip install 'purejaxppo[onnx]'")
    from jax2onnx import to_onnx

    fn, input_names, output_names = deploy_function(policy)
    _, shapes = deploy_inputs(policy, "B")
    # onnx_ir logs a warning for every shape constant whose type it leaves unset.
    serde_log = logging.getLogger("onnx_ir.serde")
    level = serde_log.level
    serde_log.setLevel(logging.ERROR)
    try:
        model = to_onnx(
            fn,
            inputs=shapes,
            model_name="purejaxppo_policy",
            opset=opset,
            input_names=input_names,
            output_names=output_names,
        )
    finally:
        serde_log.setLevel(level)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, model.SerializeToString())
    return path


def export_stablehlo(
    policy: Policy | str | os.PathLike,
    path: str | os.PathLike,
    platforms: Sequence[str] = DEFAULT_PLATFORMS,
) -> Path:
    """Write the deterministic policy as a `jax.export` artifact at `path`; returns it.

    A `.mlir` path gets the StableHLO module as text; any other suffix gets
    `Exported.serialize()`'s bytes, which `load_stablehlo` (or
    `jax.export.deserialize`) turns back into a callable on any JAX install, without
    purejaxppo. Lowered for each of `platforms` (default cpu, cuda and tpu; no device
    of those kinds is needed to export), with a symbolic batch axis.
    """
    path = Path(path)
    policy = _as_policy(policy, "export_stablehlo")
    platforms = tuple(platforms)
    known = ("cpu", "cuda", "rocm", "tpu")
    if not platforms or any(p not in known for p in platforms):
        raise ValueError(
            f"export_stablehlo: platforms={platforms!r} must name some of {', '.join(known)}"
        )
    fn, _, _ = deploy_function(policy)
    (batch,) = jax.export.symbolic_shape("B")
    _, shapes = deploy_inputs(policy, batch)
    exported = jax.export.export(jax.jit(fn), platforms=platforms)(*shapes)
    if path.suffix.lower() == ".mlir":
        data = exported.mlir_module().encode()
    else:
        data = bytes(exported.serialize())
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data)
    return path


def load_stablehlo(path: str | os.PathLike) -> Callable[..., Any]:
    """`act(*inputs) -> action` (recurrent: `(action, *carry)`) from a file
    `export_stablehlo` wrote (not a .mlir one), with the inputs of the module
    docstring. Needs only JAX."""
    path = Path(path)
    if path.suffix.lower() == ".mlir":
        raise ValueError(
            f"load_stablehlo: {path} is MLIR text; load the serialised export (any other suffix)"
        )
    exported = jax.export.deserialize(bytearray(path.read_bytes()))

    def act(*inputs):
        out = exported.call(*inputs)
        return out[0] if len(out) == 1 else out

    return act
