"""`train_population`: a population-based-training run as one compiled program, on
one device or with its members sharded over a mesh's runs axis."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from purejaxppo.config import Config
from purejaxppo.core.population import (
    PBT,
    broadcast_config,
    check_population,
    init_population,
    run_population,
)
from purejaxppo.core.types import TrainState
from purejaxppo.scale.mesh import auto_axes, check_axis, key_data_and_impl, run_keys, to_global


class PopulationOutput(NamedTuple):
    """What `train_population` returns, every leaf with leading axis N (members)."""

    state: TrainState  # each member's final state (`state.pbt`: its PBT state)
    metrics: dict[str, jax.Array]  # [N, num_updates]: METRIC_NAMES and PBT.metric_names
    config: Config  # batched [N]: each member's hyperparameters at the end


def population_train(
    pbt: PBT, configs: Config, keys: jax.Array, axis_name: str | None = None
) -> PopulationOutput:
    """The pure program: init, then num_updates population updates. `configs` is a
    batch of n (this device's members with `axis_name`), `keys` [n]."""
    members = init_population(pbt, configs, keys, axis_name)
    members, metrics = run_population(pbt, members, configs.num_updates, axis_name)
    return PopulationOutput(members, jax.tree.map(jnp.transpose, metrics), members.pbt.hparams)


@functools.cache
def _program(pbt: PBT, mesh: Mesh | None, runs_axis: str, impl: Any) -> Callable:
    """jit(population_train), over raw key data; shard_mapped over `runs_axis`."""

    def local(c: Config, kd: jax.Array, axis_name: str | None = None) -> PopulationOutput:
        return population_train(pbt, c, jax.random.wrap_key_data(kd, impl=impl), axis_name)

    if mesh is None:
        return jax.jit(local)
    spec = P(runs_axis)
    return jax.jit(
        jax.shard_map(
            functools.partial(local, axis_name=runs_axis),
            mesh=mesh,
            in_specs=(spec, spec),
            out_specs=spec,
            # The members never need replication checks: the only collectives are the
            # PBT step's all-gathers, whose results every device uses identically.
            check_vma=False,
        )
    )


def train_population(
    configs: Config,
    keys: jax.Array,
    pbt: PBT,
    mesh: Mesh | None = None,
    runs_axis: str = "runs",
) -> PopulationOutput:
    """Train a population of N members with population-based training, in one compiled
    program (see `purejaxppo.core.population`).

    configs: a batch of N configs (`Config.sweep`, `Config.stack`, or sampled), or one
      Config shared by all members (PBT then explores from identical starts).
    keys: N keys, one per member; the population's own draws come from the first.
    pbt: `purejaxppo.PBT(every=..., explore={...}, ...)`.
    mesh: None trains on the default device; a mesh with `runs_axis` splits the
      members over its devices (N must be a multiple of the axis size), with the same
      results as on one device.

    Returns the members' final states, their metrics [N, num_updates] (with their
    lineage `pbt_parent` and the explored hyperparameters each update used), and
    `config`, the members' final hyperparameters as a batched Config.
    """
    if not isinstance(configs, Config):
        raise TypeError(f"train_population: configs must be a purejaxppo.Config, got {configs!r}")
    keys = run_keys(keys, "train_population")
    n = keys.shape[0]
    if configs.batch_shape not in ((), (n,)):
        raise ValueError(
            f"train_population: {configs.batch_shape[0]} configs but {n} keys; give one key "
            "per member"
        )
    check_population(configs, pbt, n)
    configs = jax.tree.map(jnp.asarray, broadcast_config(configs, n))
    data, impl = key_data_and_impl(keys)
    if mesh is None:
        return _program(pbt, None, runs_axis, impl)(configs, data)
    devices = check_axis(mesh, runs_axis, "runs_axis")
    if n % devices:
        raise ValueError(
            f"train_population: {n} members must be a multiple of the {devices} devices of "
            f"the runs axis {runs_axis!r} (padding members would join the population)"
        )
    mesh = auto_axes(mesh)
    spec = P(runs_axis)
    return _program(pbt, mesh, runs_axis, impl)(
        to_global(configs, mesh, spec), to_global(data, mesh, spec)
    )
