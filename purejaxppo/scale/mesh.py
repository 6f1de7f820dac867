"""Many runs and one big run across devices and hosts, on JAX's own sharding.

- `train_many(configs, keys, mesh=None)`: independent runs (seeds x hyperparameters)
  vmapped on one device, or `shard_map(vmap(train))` over a "runs" mesh axis (no
  collectives; the run count is padded to a multiple of the devices and the
  padding dropped).
- `train_sharded(config, key, mesh)`: one data-parallel run. Each device of the
  "dp" axis steps num_envs / D envs; rollout, GAE and shuffling stay local;
  gradients (every minibatch), advantage and normaliser statistics and metrics are
  global; parameters and optimizer state stay replicated. With a 2-D mesh
  ("runs", "dp") it trains a batch of runs, each data-parallel: vmap inside
  shard_map.

Multi-host is the same code after `purejaxppo.distributed.initialize`: every
process runs every call on the global mesh.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from purejaxppo.config import Config
from purejaxppo.core.setup import as_key
from purejaxppo.core.train import train
from purejaxppo.core.types import TrainOutput, TrainState
from purejaxppo.scale.memory import free_bytes, program_bytes, runs_per_group

# TrainState fields with one row per env (sharded over the data axis); every other
# field is the same on all data shards.
ENV_FIELDS = ("env_state", "obs", "episode", "reward_return", "carry")


def run_keys(keys: Any, what: str) -> jax.Array:
    """`keys` as a 1-D batch of typed keys, one per run (raises naming `what` otherwise)."""
    if isinstance(keys, int):
        raise TypeError(
            f"{what}: keys={keys!r}: give one key per run, e.g. "
            f"jax.random.split(jax.random.key({keys}), num_runs)"
        )
    keys = as_key(jnp.asarray(keys))
    if keys.ndim != 1:
        raise ValueError(f"{what}: keys must be a 1-D batch of keys [R], got shape {keys.shape}")
    return keys


def _num_configs(configs: Config) -> int | None:
    return configs.batch_shape[0] if configs.batch_shape else None


def check_axis(mesh: Mesh, axis: str, role: str) -> int:
    if axis not in mesh.axis_names:
        raise ValueError(
            f"{role}={axis!r} is not an axis of the mesh (axes {mesh.axis_names}); build it "
            f"with jax.make_mesh((n,), ({axis!r},))"
        )
    return mesh.shape[axis]


def auto_axes(mesh: Mesh) -> Mesh:
    """`mesh` with every axis of type Auto (same devices, same names).

    `jax.make_mesh` makes Explicit axes by default, and an array sharded over an
    Explicit axis carries that sharding in its type: plain indexing such as
    `out.metrics["episode_return"][0]` then raises a ShardingTypeError. Results laid
    out over the Auto copy index, slice and reduce like ordinary arrays, with the same
    devices holding the same shards."""
    if all(t == AxisType.Auto for t in mesh.axis_types):
        return mesh
    return Mesh(mesh.devices, mesh.axis_names, axis_types=(AxisType.Auto,) * mesh.devices.ndim)


def _pad_runs(tree: Any, total: int) -> Any:
    """Repeat the last run until the run axis has `total` entries."""

    def pad(x):
        x = jnp.asarray(x) if not isinstance(x, jax.Array) else x
        extra = total - x.shape[0]
        if extra == 0:
            return x
        return jnp.concatenate([x, jnp.repeat(x[-1:], extra, axis=0)])

    return jax.tree.map(pad, tree)


def to_global(tree: Any, mesh: Mesh, spec: P) -> Any:
    """Host values (the same in every process) as global arrays laid out by `spec`;
    works in one process and across hosts (device_put cannot target other hosts'
    devices)."""
    sharding = NamedSharding(mesh, spec)

    def put(x):
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(put, tree)


def key_data_and_impl(keys: jax.Array) -> tuple[np.ndarray, Any]:
    """Raw key data on the host, and the PRNG implementation to rewrap it with."""
    return np.asarray(jax.random.key_data(keys)), jax.random.key_impl(keys)


@functools.cache
def _vmapped_train(config_axis: int | None) -> Callable:
    return jax.jit(jax.vmap(train, in_axes=(config_axis, 0)))


@functools.cache
def _many_program(mesh: Mesh, runs_axis: str, batched: bool, impl: Any) -> Callable:
    """jit(shard_map(vmap(train))) over the runs axis; keys arrive as raw key data."""
    per_run = jax.vmap(train, in_axes=(0 if batched else None, 0))
    run_spec = P(runs_axis)

    def local(c: Config, kd: jax.Array) -> TrainOutput:
        return per_run(c, jax.random.wrap_key_data(kd, impl=impl))

    return jax.jit(
        jax.shard_map(
            local,
            mesh=mesh,
            in_specs=(run_spec if batched else P(), run_spec),
            out_specs=run_spec,
            # Runs never communicate; scan carries that start as constants would
            # otherwise need explicit pvary annotations.
            check_vma=False,
        )
    )


@functools.cache
def _trim_program(mesh: Mesh, runs: int) -> Callable:
    """Drop the padding runs; the remaining count may not split over the devices, so the
    result is replicated."""
    replicated = NamedSharding(mesh, P())
    gather = jax.jit(lambda t: t, out_shardings=replicated)
    trim = jax.jit(lambda t: jax.tree.map(lambda x: x[:runs], t), out_shardings=replicated)
    return lambda tree: trim(gather(tree))


def train_many(
    configs: Config,
    keys: jax.Array,
    mesh: Mesh | None = None,
    runs_axis: str = "runs",
    group_size: int | None = None,
) -> TrainOutput:
    """R independent runs: `configs` is one Config (shared) or a batch of R
    (`Config.sweep` / `Config.stack`), `keys` a batch of R keys. Results have leading
    axis R and equal `[train(config_i, key_i) for i in range(R)]`; they index and
    slice like ordinary arrays, sharded or not.

    mesh: None runs `vmap(train)` on the default device; a mesh with a `runs_axis`
    splits the runs over its devices (`shard_map(vmap(train))`, no collectives; R is
    padded to a multiple of the devices and the padding dropped, the result then being
    replicated). Called from the host (not inside jit); compiled programs are reused
    across calls with the same layout.

    group_size: runs per compiled call. None (the default) sizes it from the compiled
    program's memory analysis and the device's free memory: all R at once when they
    fit, else the largest group that does (a multiple of the mesh's devices), the
    groups run one after another (the last padded) and concatenated, with the same
    results as one big vmap up to float rounding (XLA may pick other kernels for
    another batch size).
    """
    if not isinstance(configs, Config):
        raise TypeError(f"train_many: configs must be a purejaxppo.Config, got {configs!r}")
    keys = run_keys(keys, "train_many")
    runs = keys.shape[0]
    batched = _num_configs(configs) is not None
    if batched and _num_configs(configs) != runs:
        raise ValueError(
            f"train_many: {_num_configs(configs)} configs but {runs} keys; give one key per "
            "config (or one unbatched config for all keys)"
        )
    if group_size is not None and (
        not isinstance(group_size, int) or isinstance(group_size, bool) or group_size < 1
    ):
        raise ValueError(
            f"train_many: group_size={group_size!r} must be a positive int (or None: sized "
            "from the program's memory analysis)"
        )
    devices = 1
    if mesh is not None:
        devices = check_axis(mesh, runs_axis, "runs_axis")
        mesh = auto_axes(mesh)
    size = min(group_size or runs, runs)
    if size == runs:  # all at once, unless the memory analysis says otherwise
        whole = _placed_group(configs, keys, mesh, runs_axis, batched)
        if group_size is None:
            program, args, _ = whole
            device = mesh.local_devices[0] if mesh is not None else None
            needed = program_bytes(program.lower(*args).compile())  # reused by the call
            size = runs_per_group(runs, needed, free_bytes(device), devices)
        if size == runs:
            return _run_group(configs, keys, mesh, runs_axis, batched, whole)
    starts = range(0, runs, size)
    padded_configs = _pad_runs(configs, len(starts) * size) if batched else configs
    padded_keys = _pad_runs(keys, len(starts) * size)
    outs = [
        _run_group(
            jax.tree.map(lambda x, i=i: x[i : i + size], padded_configs) if batched else configs,
            padded_keys[i : i + size],
            mesh,
            runs_axis,
            batched,
        )
        for i in starts
    ]
    return jax.tree.map(lambda *xs: jnp.concatenate(xs)[:runs], *outs)


def _placed_group(
    configs: Config, keys: jax.Array, mesh: Mesh | None, runs_axis: str, batched: bool
) -> tuple[Callable, tuple, int | None]:
    """(the jitted program for these runs, its inputs placed for it, the number of
    real runs when padding was added for the mesh, else None)."""
    if mesh is None:
        return _vmapped_train(0 if batched else None), (configs, keys), None
    runs, devices = keys.shape[0], mesh.shape[runs_axis]
    total = math.ceil(runs / devices) * devices
    if batched:
        configs = _pad_runs(configs, total)
    data, impl = key_data_and_impl(_pad_runs(keys, total))
    run_spec = P(runs_axis)
    args = (
        to_global(configs, mesh, run_spec if batched else P()),
        to_global(data, mesh, run_spec),
    )
    return _many_program(mesh, runs_axis, batched, impl), args, runs if total != runs else None


def _run_group(
    configs: Config,
    keys: jax.Array,
    mesh: Mesh | None,
    runs_axis: str,
    batched: bool,
    placed: tuple[Callable, tuple, int | None] | None = None,
) -> TrainOutput:
    """These runs (padding dropped); `placed`: what `_placed_group` already prepared."""
    if placed is None:
        placed = _placed_group(configs, keys, mesh, runs_axis, batched)
    program, args, real = placed
    out = program(*args)
    return out if real is None else _trim_program(mesh, real)(out)


def data_parallel_check(config: Config, shards: int, what: str = "train_sharded") -> None:
    """The config splits evenly over `shards` data-parallel devices (raises otherwise)."""
    if config.num_envs % shards:
        raise ValueError(
            f"{what}: Config.num_envs={config.num_envs} must be divisible by the "
            f"{shards} devices of the data axis (each steps num_envs / {shards} envs)"
        )
    local_envs = config.num_envs // shards
    if config.recurrent is not None and local_envs % config.num_minibatches:
        raise ValueError(
            f"{what}: Config.num_minibatches={config.num_minibatches} must divide each "
            f"device's envs (num_envs / {shards} = {local_envs}): with "
            f"recurrent={config.recurrent!r} a minibatch is whole env sequences"
        )
    local_batch = local_envs * config.num_steps
    if local_batch % config.num_minibatches:
        raise ValueError(
            f"{what}: Config.num_minibatches={config.num_minibatches} must divide each "
            f"device's batch (num_envs / {shards} * num_steps = {local_batch})"
        )


def state_specs(state: TrainState, data_axis: str, runs_axis: str | None = None) -> TrainState:
    """PartitionSpecs of a (global) TrainState: env rows over `data_axis`, the rest
    replicated; with `runs_axis`, every field also has a leading run axis."""
    lead = (runs_axis,) if runs_axis else ()
    env, rest = P(*lead, data_axis), P(*lead)
    return TrainState(
        **{
            name: jax.tree.map(lambda _, s=(env if name in ENV_FIELDS else rest): s, value)
            for name, value in state._asdict().items()
        }
    )


def train_sharded(
    config: Config,
    key: jax.Array,
    mesh: Mesh,
    data_axis: str = "dp",
    runs_axis: str | None = None,
) -> TrainOutput:
    """One PPO run whose envs span the `data_axis` devices of `mesh` (or, with a
    `runs_axis`, a batch of such runs).

    The result is the global view: env rows (env_state, obs, episode statistics,
    reward-scaling returns) sharded over `data_axis` with leading size num_envs;
    parameters, optimizer and normaliser state and metrics replicated. Per-env keys
    come from one global split, so the rollout does not depend on the device count.

    runs_axis: with a 2-D mesh ("runs", "dp"), `config` may be a batch of R configs
    and `key` a batch of R keys (R divisible by the runs-axis size); runs are
    vmapped inside shard_map and each is data-parallel over `data_axis`.
    """
    if not isinstance(config, Config):
        raise TypeError(f"train_sharded: config must be a purejaxppo.Config, got {config!r}")
    shards = check_axis(mesh, data_axis, "data_axis")
    data_parallel_check(config, shards)
    mesh = auto_axes(mesh)

    if runs_axis is None:
        if config.batch_shape:
            raise ValueError(
                "train_sharded: a batched config (a sweep) needs a runs axis: a 2-D mesh "
                "('runs', 'dp') and runs_axis='runs', with one key per config"
            )
        key = jax.random.key(key) if isinstance(key, int) else as_key(jnp.asarray(key))
        if key.ndim:
            raise ValueError("train_sharded: one key for one run (use runs_axis for a batch)")
        batched = None
    else:
        runs_devices = check_axis(mesh, runs_axis, "runs_axis")
        key = run_keys(key, "train_sharded")
        runs = key.shape[0]
        batched = _num_configs(config)
        if batched is not None and batched != runs:
            raise ValueError(f"train_sharded: {batched} configs but {runs} keys")
        if runs % runs_devices:
            raise ValueError(
                f"train_sharded: {runs} runs must be divisible by the {runs_devices} devices "
                f"of the runs axis {runs_axis!r}"
            )
    data, impl = key_data_and_impl(key)
    program = _sharded_program(
        jax.tree.structure(config), mesh, data_axis, runs_axis, batched is not None, impl
    )
    config_spec = P(runs_axis) if batched is not None else P()
    key_spec = P(runs_axis) if runs_axis else P()
    return program(to_global(config, mesh, config_spec), to_global(data, mesh, key_spec))


@functools.cache
def _sharded_program(
    treedef: Any, mesh: Mesh, data_axis: str, runs_axis: str | None, batched: bool, impl: Any
) -> Callable:
    """jit(shard_map(train over data_axis)), vmapped over runs with a runs axis. The
    config's treedef (its static fields) fixes the output layout."""
    config = jax.tree.unflatten(treedef, [np.float32(0)] * treedef.num_leaves)

    def one(c: Config, kd: jax.Array) -> TrainOutput:
        return train(c, jax.random.wrap_key_data(kd, impl=impl), axis_name=data_axis)

    abstract = jax.eval_shape(lambda c, k: train(c, k), config, jax.random.key(0))
    fn, config_spec, key_spec = one, P(), P()
    if runs_axis is not None:
        fn = jax.vmap(one, in_axes=(0 if batched else None, 0))
        config_spec, key_spec = (P(runs_axis) if batched else P()), P(runs_axis)
    out_specs = TrainOutput(
        state_specs(abstract.state, data_axis, runs_axis),
        jax.tree.map(lambda _: P(runs_axis) if runs_axis else P(), abstract.metrics),
    )
    return jax.jit(
        jax.shard_map(
            fn,
            mesh=mesh,
            in_specs=(config_spec, key_spec),
            out_specs=out_specs,
            # Replication of params/metrics comes from the pmeans, and is checked by
            # the tests' fingerprints; the scan carries start as unvarying constants.
            check_vma=False,
        )
    )


def fingerprints(tree: Any) -> np.ndarray:
    """One number per device for a replicated pytree: the sum of |x| of its leaves on
    that device's copy; equal entries mean identical copies (up to that sum)."""
    per_device = []
    for shards in zip(*(leaf.addressable_shards for leaf in jax.tree.leaves(tree)), strict=True):
        per_device.append(sum(float(np.abs(np.asarray(s.data, np.float64)).sum()) for s in shards))
    return np.asarray(per_device)
