"""The compiled programs `fit` runs: one interface, two implementations.

`SingleDeviceProgram` vmaps the seeds and sweep points of a run layout on one device
(the chunk of K updates is one AOT-compiled call whose input state is donated, so
chunked training equals one-shot `train` bitwise on the CPU); `DataParallelProgram`
runs one run's envs split over a mesh axis (the layout of `train_sharded`). The host
loop calls the same methods on either: `start`, `build`, `chunk`, `evaluate`,
`host_state`, `agree`, and `quietly` for anything else that may load compiled code.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo.acting.policy import EvalResult, evaluate_params
from purejaxppo.config import Config
from purejaxppo.core.population import (
    PBT,
    broadcast_config,
    check_population,
    init_population,
    run_population,
)
from purejaxppo.core.setup import as_key
from purejaxppo.core.train import init, run_updates
from purejaxppo.core.types import TrainState
from purejaxppo.io.cache import quiet_cache_loads
from purejaxppo.runner.layout import RunLayout
from purejaxppo.scale.memory import free_bytes, program_bytes, runs_per_group

# Evaluation keys are folded from the run key with this, so they never touch training's.
EVAL_KEY_SALT = 0x65766C


def _batched(fn: Callable, seeds: bool, sweep: bool, x_per_config: bool) -> Callable:
    """vmap fn(config, x) over seeds (x only) and over sweep configs (the config, and
    x too when it already has a per-config axis)."""
    if seeds:
        fn = jax.vmap(fn, in_axes=(None, 0))
    if sweep:
        fn = jax.vmap(fn, in_axes=(0, 0 if x_per_config else None))
    return fn


def init_runs(config: Config, keys: jax.Array, seeds: bool, sweep: bool) -> TrainState:
    """Initial states of all runs, leading axes [configs?, seeds?]; every config of a
    sweep starts from the same seeds."""
    return _batched(init, seeds, sweep, x_per_config=False)(config, keys)


def run_chunk(
    config: Config, state: TrainState, num_updates: int, seeds: bool, sweep: bool
) -> tuple[TrainState, dict[str, jax.Array]]:
    """`num_updates` updates of every run; metrics [*batch, num_updates]."""
    step = _batched(lambda c, s: run_updates(c, s, num_updates), seeds, sweep, x_per_config=True)
    return step(config, state)


def eval_runs(
    config: Config,
    state: TrainState,
    keys: jax.Array,
    num_episodes: int,
    deterministic: bool,
    seeds: bool,
    sweep: bool,
) -> EvalResult:
    """Evaluate every run of a batched state, one key per run (keys shaped like the batch)."""

    def one(c, s_and_k):
        s, k = s_and_k
        return evaluate_params(c, s.params, s.obs_stats, k, num_episodes, deterministic)

    return _batched(one, seeds, sweep, x_per_config=True)(config, (state, keys))


def init_members(config: Config, keys: jax.Array, pbt: PBT) -> TrainState:
    """The population's members at update 0 (one per key; config a batch of them)."""
    return init_population(pbt, config, keys)


def population_chunk(
    state: TrainState, pbt: PBT, num_updates: int
) -> tuple[TrainState, dict[str, jax.Array]]:
    """`num_updates` population updates; metrics [members, num_updates]."""
    state, metrics = run_population(pbt, state, num_updates)
    return state, jax.tree.map(jnp.transpose, metrics)


def _all_finite(params: Any) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(params)]
    return jnp.all(jnp.stack(leaves))


_init_jit = jax.jit(init_runs, static_argnums=(2, 3))
_run_chunk_jit = jax.jit(run_chunk, static_argnums=(2, 3, 4), donate_argnums=1)
eval_runs_jit = jax.jit(eval_runs, static_argnums=(3, 4, 5, 6))
_init_members_jit = jax.jit(init_members, static_argnums=2)
_population_chunk_jit = jax.jit(population_chunk, static_argnums=(1, 2), donate_argnums=0)
_all_finite_jit = jax.jit(_all_finite)

# Ahead-of-time compiled programs of this process, by signature, so that a second
# fit() of the same shapes (a notebook re-run, a resume) does not compile again.
_COMPILED: dict[Any, Any] = {}


def _signature(*args: Any) -> Any:
    leaves, treedef = jax.tree.flatten(args)
    return treedef, tuple((np.shape(x), jnp.result_type(x)) for x in leaves)


def compiled(jitted: Any, *args: Any, static: tuple = (), name: Any = None) -> Any:
    """`jitted.lower(*args, *static).compile()`, reused for the same signature.

    name: what the program is, when `jitted` is built afresh per call (its id, the
    default, could then be reused by another program)."""
    key = (id(jitted) if name is None else name, _signature(*args), static)
    if key not in _COMPILED:
        _COMPILED[key] = jitted.lower(*args, *static).compile()
    return _COMPILED[key]


def fetch(tree: Any) -> Any:
    """Host numpy copy of arrays that are whole on this process (one device, or
    replicated across hosts: the local copy is the value)."""

    def one(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(x.addressable_data(0))
        return np.asarray(jax.device_get(x))

    return jax.tree.map(one, tree)


def abstract_run(
    config: Config, num_seeds: int, pbt: PBT | None = None
) -> tuple[Any, dict[str, Any]]:
    """Abstract (shape-only) TrainState and one-update metrics of a run layout (of a
    population's members with `pbt`)."""
    seeds, sweep = num_seeds > 1, config.batch_shape != ()
    key = jax.random.key(0)
    if pbt is not None:
        n = num_seeds * (config.batch_shape or (1,))[0]
        members = broadcast_config(config, n)
        keys = jax.random.split(key, n)
        state = jax.eval_shape(lambda c, k: init_members(c, k, pbt), members, keys)
        return state, jax.eval_shape(lambda s: population_chunk(s, pbt, 1), state)[1]
    keys = jax.random.split(key, num_seeds) if seeds else key
    state = jax.eval_shape(lambda c, k: init_runs(c, k, seeds, sweep), config, keys)
    _, metrics = jax.eval_shape(lambda c, s: run_chunk(c, s, 1, seeds, sweep), config, state)
    return state, metrics


def quiet(method: Callable) -> Callable:
    """Run `method` with XLA:CPU's false cache-load errors filtered out of stderr
    (`purejaxppo.io.cache.quiet_cache_loads`): every call of the runner that may
    compile or load a program goes through one of the methods so decorated."""

    @functools.wraps(method)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with quiet_cache_loads():
            return method(*args, **kwargs)

    return wrapped


class Program:
    """The compiled pieces of one fit: init or restore, chunks of updates, the
    finiteness check and evaluation. Subclasses say how a state is laid out."""

    def __init__(self, config: Config, layout: RunLayout):
        self.config, self.layout = config, layout
        self._chunks: dict[int, Callable] = {}
        self._finite: Callable | None = None
        self._evaluate: Callable | None = None

    # -- what an implementation provides ---------------------------------------------
    def init(self, key: jax.Array) -> TrainState:
        raise NotImplementedError

    def restore(self, host_state: TrainState) -> TrainState:
        """A checkpoint's host state placed as this program's input."""
        raise NotImplementedError

    def chunk_program(self, state: TrainState, n: int) -> Callable:
        """The compiled `(config, state) -> (state, metrics)` of n updates."""
        raise NotImplementedError

    def host_state(self, state: TrainState) -> TrainState:
        """The whole state, readable on this process (a collective when sharded)."""
        return state

    def agree(self, flag: bool) -> bool:
        """Process 0's value of `flag` on every process (a collective when sharded)."""
        return flag

    # -- what the loop calls -----------------------------------------------------------
    @quiet
    def start(
        self, key: Any, host_state: TrainState | None = None, eval_key_data: Any = None
    ) -> tuple[TrainState, jax.Array]:
        """(first state, evaluation root key): fresh from `key` (a typed or legacy key
        or an int seed), or a checkpoint's `host_state` and saved evaluation key."""
        key = jax.random.key(key) if isinstance(key, int | np.integer) else as_key(jnp.asarray(key))
        if eval_key_data is None:
            eval_root = jax.random.fold_in(key, EVAL_KEY_SALT)
        else:
            eval_root = jax.random.wrap_key_data(np.asarray(eval_key_data, np.uint32))
        state = self.init(key) if host_state is None else self.restore(host_state)
        return state, eval_root

    @quiet
    def build(
        self,
        state: TrainState,
        lengths: Iterable[int],
        eval_root: jax.Array,
        eval_episodes: int | None = None,
        eval_deterministic: bool = True,
    ) -> None:
        """Compile the chunk programs of these lengths (and the evaluation)."""
        self._chunks = {n: self.chunk_program(state, n) for n in sorted(set(lengths))}
        self._finite = compiled(_all_finite_jit, state.params)
        if eval_episodes:
            layout = self.layout
            static = (eval_episodes, eval_deterministic, layout.seeds, layout.sweep)
            keys = layout.run_keys(eval_root)
            self._evaluate = compiled(eval_runs_jit, self.config, state, keys, static=static)
        jax.block_until_ready(state)

    def chunk(self, state: TrainState, n: int) -> tuple[TrainState, dict[str, np.ndarray], bool]:
        """(state, host metrics [*batch, n], whether the parameters are finite)."""
        state, metrics = self._chunks[n](self.config, state)
        return state, fetch(metrics), bool(fetch(self._finite(state.params)))

    @quiet
    def evaluate(self, state: TrainState, key: jax.Array) -> EvalResult:
        """Evaluate every run (host arrays [*batch, episodes]), one key per run from `key`."""
        return fetch(self._evaluate(self.config, state, self.layout.run_keys(key)))

    @quiet
    def quietly(self, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        """`fn(*args, **kwargs)` (a save, a restore, the final files) filtered alike."""
        return fn(*args, **kwargs)


class SingleDeviceProgram(Program):
    """Seeds and sweep points vmapped inside each compiled call, on the default device."""

    def init(self, key: jax.Array) -> TrainState:
        layout = self.layout
        return _init_jit(self.config, layout.seed_keys(key), layout.seeds, layout.sweep)

    def restore(self, host_state: TrainState) -> TrainState:
        return jax.device_put(host_state)

    def chunk_program(self, state: TrainState, n: int) -> Callable:
        """All runs in one call when the compiled chunk fits the device's free memory;
        else the seeds in groups that fit (see `purejaxppo.scale.memory`), each group
        its own call of one program, the results concatenated."""
        layout = self.layout
        static = (n, layout.seeds, layout.sweep)
        whole = compiled(_run_chunk_jit, self.config, state, static=static)
        if not layout.seeds:
            return whole
        size = runs_per_group(layout.num_seeds, program_bytes(whole), free_bytes())
        if size >= layout.num_seeds:
            return whole
        return seed_groups(self.config, state, n, layout, size)


def seed_groups(
    config: Config, state: TrainState, n: int, layout: RunLayout, size: int
) -> Callable:
    """A chunk of n updates run over the seed axis in groups of `size` seeds (the last
    may be smaller: at most two compiled programs), concatenated back."""
    axis = len(layout.batch_shape)  # the seed axis: after the sweep's
    starts = list(range(0, layout.num_seeds, size))

    def part(tree: Any, start: int) -> Any:
        return jax.tree.map(lambda x: jax.lax.slice_in_dim(x, start, start + size, axis=axis), tree)

    static = (n, layout.seeds, layout.sweep)
    programs = {
        start: compiled(_run_chunk_jit, config, part(state, start), static=static)
        for start in starts
    }

    def run(config: Config, state: TrainState) -> tuple[TrainState, dict[str, jax.Array]]:
        outs = [programs[start](config, part(state, start)) for start in starts]
        return jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=axis), *outs)

    return run


class PopulationProgram(Program):
    """The runs of a 1-D layout (a sweep's configs, or one config's seeds) as a
    population trained with PBT (`purejaxppo.core.population`), on the default device.
    Member i starts from `jax.random.split(key, runs)[i]`, so a fit equals
    `train_population(config, jax.random.split(key, runs), pbt)`."""

    def __init__(self, config: Config, layout: RunLayout, pbt: PBT):
        if layout.seeds and layout.sweep:
            raise ValueError(
                f"fit(pbt=...): the population is the runs of a sweep or the seeds of one "
                f"config, not both (here {layout.batch_shape[0]} configs x "
                f"{layout.num_seeds} seeds); stack the configs you want instead "
                "(Config.stack) and use one seed"
            )
        if layout.num_runs < 2:
            raise ValueError(
                "fit(pbt=...): a population needs at least 2 runs: give num_seeds >= 2 or a "
                "sweep (Config.sweep) of 2 or more configs"
            )
        check_population(config, pbt, layout.num_runs)
        super().__init__(config, layout)
        self.pbt = pbt
        self.members = broadcast_config(config, layout.num_runs)

    def init(self, key: jax.Array) -> TrainState:
        keys = jax.random.split(key, self.layout.num_runs)
        return _init_members_jit(self.members, keys, self.pbt)

    def restore(self, host_state: TrainState) -> TrainState:
        return jax.device_put(host_state)

    def chunk_program(self, state: TrainState, n: int) -> Callable:
        program = compiled(_population_chunk_jit, state, static=(self.pbt, n))
        return lambda _config, s: program(s)


class DataParallelProgram(Program):
    """One run whose envs are split over a mesh axis (see `train_sharded`): gradients
    and statistics averaged over it, every process runs every call."""

    def __init__(self, config: Config, layout: RunLayout, mesh: Any, axis: str):
        from purejaxppo.scale.mesh import auto_axes, check_axis, data_parallel_check, state_specs

        if config.batch_shape or layout.num_seeds > 1:
            raise ValueError(
                "fit(mesh=...): one data-parallel run takes one config and one seed; for "
                "batches of runs use purejaxppo.train_sharded(..., runs_axis=...) or "
                "train_many"
            )
        data_parallel_check(config, check_axis(mesh, axis, "data_axis"), "fit(mesh=...)")
        super().__init__(config, layout)
        self.mesh, self.axis = auto_axes(mesh), axis  # results index like arrays
        self.specs = state_specs(jax.eval_shape(init, config, jax.random.key(0)), axis)

    def _shard_map(self, fn: Callable, in_specs: Any, out_specs: Any) -> Callable:
        return jax.shard_map(
            fn, mesh=self.mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False
        )

    def _replicate(self, tree: Any) -> Any:
        from purejaxppo.scale.mesh import to_global

        return to_global(tree, self.mesh, jax.P())

    def init(self, key: jax.Array) -> TrainState:
        from purejaxppo.scale.mesh import key_data_and_impl

        data, impl = key_data_and_impl(key)
        program = jax.jit(
            self._shard_map(
                lambda c, kd: init(c, jax.random.wrap_key_data(kd, impl=impl), self.axis),
                (jax.P(), jax.P()),
                self.specs,
            )
        )
        return program(self._replicate(self.config), self._replicate(data))

    def restore(self, host_state: TrainState) -> TrainState:
        from purejaxppo.scale.mesh import to_global

        data = jax.tree.map(
            lambda x: jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x,
            host_state,
        )
        placed = jax.tree.map(lambda x, spec: to_global(x, self.mesh, spec), data, self.specs)
        return placed._replace(key=jax.random.wrap_key_data(placed.key))

    def chunk_program(self, state: TrainState, n: int) -> Callable:
        program = jax.jit(
            self._shard_map(
                lambda c, s: run_updates(c, s, n, self.axis),
                (jax.P(), self.specs),
                (self.specs, jax.P()),
            ),
            donate_argnums=1,
        )
        global_config = self._replicate(self.config)
        name = ("data-parallel chunk", n, self.axis, self.mesh)
        program = compiled(program, global_config, state, name=name)
        return lambda _config, s: program(global_config, s)

    def agree(self, flag: bool) -> bool:
        if jax.process_count() == 1:
            return flag
        from jax.experimental import multihost_utils

        return bool(multihost_utils.broadcast_one_to_all(np.asarray(flag)))

    def host_state(self, state: TrainState) -> TrainState:
        """The env rows gathered from every device and process, as host arrays."""
        from jax.experimental import multihost_utils

        state = state._replace(key=jax.random.key_data(state.key))
        if jax.process_count() == 1:
            host = jax.device_get(state)
        else:
            host = multihost_utils.process_allgather(state, tiled=True)
        return host._replace(key=jax.random.wrap_key_data(np.asarray(host.key)))


def make_program(
    config: Config, layout: RunLayout, mesh: Any = None, axis: str = "dp", pbt: PBT | None = None
) -> Program:
    """The data-parallel program over `mesh`'s `axis`, the population program with
    `pbt`, or the single-device one."""
    if pbt is not None:
        if mesh is not None:
            raise ValueError(
                "fit(pbt=..., mesh=...): a population in fit runs on one device; shard "
                "its members over devices with purejaxppo.train_population(..., mesh=...)"
            )
        return PopulationProgram(config, layout, pbt)
    if mesh is None:
        return SingleDeviceProgram(config, layout)
    return DataParallelProgram(config, layout, mesh, axis)
