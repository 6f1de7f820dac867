"""Host-side training loop: `fit` runs the pure update in jitted chunks and, between
chunks, reports progress, logs, evaluates, checkpoints and guards against NaNs.

The arithmetic is exactly that of `train` (the same `init` and `run_updates`): a
chunk of K updates is one compiled call whose input state is donated, so chunked
training ends with the same parameters as one-shot `train(config, key)` (bitwise on
the CPU). Seeds and batched `Config.sweep` configs are vmapped inside each chunk.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo.acting.policy import evaluate_params
from purejaxppo.config import TRACED_FIELDS, Config
from purejaxppo.core.setup import as_key
from purejaxppo.core.train import init, run_updates
from purejaxppo.core.types import TrainState
from purejaxppo.io import checkpoints as ckpt
from purejaxppo.io.cache import quiet_cache_loads

# A chunk's "recent return" averages over (at most) its last this many updates.
RECENT_UPDATES = 10
# Losses checked by the non-finite guard (explained_variance may be NaN legitimately).
GUARDED_METRICS = ("policy_loss", "value_loss", "entropy")


class NonFiniteError(FloatingPointError):
    """Training produced a NaN or inf; the message names the update."""


@dataclasses.dataclass(frozen=True)
class ChunkReport:
    """Progress after one chunk; `str(report)` is a one-line summary.

    Update and step counts are per run; `steps_per_second` counts the env steps of
    all runs (seeds x configs) together, over run time only (compilation excluded).
    """

    chunk: int  # 1-based index of the chunk just finished
    num_chunks: int
    update: int  # updates completed so far
    num_updates: int
    env_steps: int  # env steps completed so far, per run
    num_runs: int  # runs trained side by side (seeds x configs)
    recent_return: float  # nanmean episode_return over the chunk's last updates and all runs
    steps_per_second: float
    elapsed: float  # seconds since fit started, compilation included
    compile_seconds: float  # init (or restore) plus compiling the chunk program(s)
    metrics: dict[str, np.ndarray]  # this chunk's metrics, update axis last
    eval_return: float | None = None  # mean evaluation return over runs, if evaluated
    checkpoint: Path | None = None  # checkpoint written after this chunk, if any

    def __str__(self) -> str:
        width = len(str(self.num_updates))
        total_steps = self.env_steps // max(self.update, 1) * self.num_updates
        ret = "n/a" if math.isnan(self.recent_return) else f"{self.recent_return:.1f}"
        line = (
            f"update {self.update:>{width}}/{self.num_updates} | "
            f"env steps {self.env_steps:>{len(f'{total_steps:,}')},} | "
            f"return {ret:>7} | {self.steps_per_second:>12,.0f} steps/s"
        )
        if self.eval_return is not None:
            line += f" | eval {self.eval_return:.1f}"
        if self.chunk == 1:
            line += f" | compile {self.compile_seconds:.1f} s"
        return line


@dataclasses.dataclass(frozen=True)
class EvalHistory:
    """Evaluations during a run: returns/lengths [*batch, n, episodes]."""

    updates: np.ndarray  # [n] int: updates completed when each evaluation ran
    returns: np.ndarray
    lengths: np.ndarray


@dataclasses.dataclass(frozen=True)
class FitResult:
    """What `fit` returns. `state` and `metrics` have leading axes
    [*config.batch_shape, num_seeds (only if > 1)]; metrics end with the update axis."""

    state: TrainState
    metrics: dict[str, np.ndarray]
    evals: EvalHistory | None
    run_dir: Path | None
    compile_seconds: float
    run_seconds: float  # chunk calls only (device time plus fetching metrics)
    steps_per_second: float  # all runs' env steps / run_seconds
    loop_seconds: float  # the whole loop after compiling: chunks, logs, evals, checkpoints


def chunk_lengths(num_updates: int, num_chunks: int) -> list[int]:
    """Lengths of consecutive chunks that sum to `num_updates`, about
    `num_updates / num_chunks` each.

    Equal chunks share one compiled program, so a divisor of `num_updates` whose chunk
    count is within a factor of 2 of `num_chunks` is preferred (the closest one);
    otherwise equal chunks of ceil(num_updates / num_chunks) plus one shorter
    remainder chunk (a second compiled program).
    """
    for name, v in (("num_updates", num_updates), ("num_chunks", num_chunks)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}={v!r}: must be a positive integer")
    target = min(num_chunks, num_updates)
    counts = set()
    for d in range(1, math.isqrt(num_updates) + 1):
        if num_updates % d == 0:
            counts.update((d, num_updates // d))
    near = [c for c in counts if target / 2 <= c <= 2 * target]
    if near:
        count = min(near, key=lambda c: (abs(math.log(c / target)), -c))
        return [num_updates // count] * count
    length = math.ceil(num_updates / target)
    full, rest = divmod(num_updates, length)
    return [length] * full + ([rest] if rest else [])


def _positive_or_none(name: str, value: Any, allow_zero: bool = False) -> None:
    if value is None:
        return
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        rule = "a non-negative integer" if allow_zero else "a positive integer"
        raise ValueError(f"{name}={value!r}: must be {rule} (or None)")


def plan_chunk_updates(
    num_updates: int,
    num_chunks: int = 10,
    chunk_updates: int | None = None,
    checkpoint_every: int | None = None,
    eval_every: int | None = None,
) -> int:
    """Updates per chunk. Checkpoints and evaluations happen at chunk ends, so their
    intervals must be multiples of it; without an explicit `chunk_updates` it is the
    gcd of the intervals given, else about num_updates / num_chunks."""
    _positive_or_none("chunk_updates", chunk_updates)
    _positive_or_none("checkpoint_every", checkpoint_every, allow_zero=True)
    _positive_or_none("eval_every", eval_every, allow_zero=True)
    intervals = {
        n: v for n, v in (("checkpoint_every", checkpoint_every), ("eval_every", eval_every)) if v
    }
    if chunk_updates is None:
        if intervals:
            return min(math.gcd(*intervals.values()), num_updates)
        return chunk_lengths(num_updates, num_chunks)[0]
    for name, every in intervals.items():
        if every % chunk_updates:
            raise ValueError(
                f"{name}={every}: must be a multiple of chunk_updates={chunk_updates} "
                "(checkpoints and evaluations happen between chunks)"
            )
    return min(chunk_updates, num_updates)


# ---- compiled pieces ---------------------------------------------------------------


def _batched(fn: Callable, seeds: bool, sweep: bool, x_per_config: bool) -> Callable:
    """vmap fn(config, x) over seeds (x only) and over sweep configs (the config, and
    x too when it already has a per-config axis)."""
    if seeds:
        fn = jax.vmap(fn, in_axes=(None, 0))
    if sweep:
        fn = jax.vmap(fn, in_axes=(0, 0 if x_per_config else None))
    return fn


def _init_runs(config: Config, keys: jax.Array, seeds: bool, sweep: bool) -> TrainState:
    """Initial states of all runs, leading axes [configs?, seeds?]; every config of a
    sweep starts from the same seeds."""
    return _batched(init, seeds, sweep, x_per_config=False)(config, keys)


def _run_chunk(
    config: Config, state: TrainState, num_updates: int, seeds: bool, sweep: bool
) -> tuple[TrainState, dict[str, jax.Array]]:
    step = _batched(lambda c, s: run_updates(c, s, num_updates), seeds, sweep, x_per_config=True)
    return step(config, state)


def _eval_runs(
    config: Config,
    state: TrainState,
    keys: jax.Array,
    num_episodes: int,
    deterministic: bool,
    seeds: bool,
    sweep: bool,
):
    def one(c, s_and_k):
        s, k = s_and_k
        return evaluate_params(c, s.params, s.obs_stats, k, num_episodes, deterministic)

    return _batched(one, seeds, sweep, x_per_config=True)(config, (state, keys))


def _all_finite(params: Any) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(params)]
    return jnp.all(jnp.stack(leaves))


_init_jit = jax.jit(_init_runs, static_argnums=(2, 3))
_run_chunk_jit = jax.jit(_run_chunk, static_argnums=(2, 3, 4), donate_argnums=1)
eval_runs_jit = jax.jit(_eval_runs, static_argnums=(3, 4, 5, 6))
_all_finite_jit = jax.jit(_all_finite)

# Ahead-of-time compiled programs of this process, by signature, so that a second
# fit() of the same shapes (a notebook re-run, a resume) does not compile again.
_COMPILED: dict[Any, Any] = {}


def _signature(*args: Any) -> Any:
    leaves, treedef = jax.tree.flatten(args)
    return treedef, tuple((np.shape(x), jnp.result_type(x)) for x in leaves)


def _compiled(jitted: Any, *args: Any, static: tuple = ()) -> Any:
    """`jitted.lower(*args, *static).compile()`, reused for the same signature."""
    key = (id(jitted), _signature(*args), static)
    if key not in _COMPILED:
        _COMPILED[key] = jitted.lower(*args, *static).compile()
    return _COMPILED[key]


def nanmean(x: np.ndarray) -> float:
    """Mean of the non-NaN entries; NaN when there are none (no warning)."""
    finite = x[~np.isnan(x)]
    return float(finite.mean()) if finite.size else math.nan


# ---- run bookkeeping ---------------------------------------------------------------


def run_labels(config: Config, num_seeds: int) -> list[dict[str, Any]]:
    """One label per run, in the flattened [configs, seeds] order: run, config and
    seed indices plus the values of the hyperparameters a sweep varies."""
    swept = {}
    for name in TRACED_FIELDS:
        value = getattr(config, name)
        if value is None:
            continue
        arr = np.asarray(value, np.float32)
        if arr.ndim and np.unique(arr).size > 1:
            swept[name] = [float(str(x)) for x in arr]
    num_configs = math.prod(config.batch_shape)
    return [
        {"run": c * num_seeds + s, "config": c, "seed": s} | {n: v[c] for n, v in swept.items()}
        for c in range(num_configs)
        for s in range(num_seeds)
    ]


def _label_name(label: dict[str, Any]) -> str:
    return f"c{label['config']}_s{label['seed']}"


def default_run_dir(config: Config, root: str | Path = "runs") -> Path:
    """`runs/<env>-<YYYYmmdd-HHMMSS>` (a fresh folder name per run)."""
    env = config.env if isinstance(config.env, str) else type(config.env).__name__
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{env.replace('/', '-')}-{stamp}"
    path, i = base, 1
    while path.exists():
        path, i = Path(f"{base}-{i}"), i + 1
    return path


def _flat_runs(tree: Any, lead: int) -> Any:
    """Merge the first `lead` axes (configs?, seeds?) into one run axis."""
    return jax.tree.map(lambda x: np.reshape(x, (-1, *np.shape(x)[lead:])), tree)


def _guard(
    metrics: dict[str, np.ndarray],
    params_finite: bool,
    first_update: int,
    labels: list[dict[str, Any]],
    lead: int,
    last_checkpoint: str,
) -> None:
    """Raise NonFiniteError naming the first update whose losses are not finite."""
    worst = None
    for name in GUARDED_METRICS:
        flat = _flat_runs(metrics[name], lead)  # [R, K]
        bad = ~np.isfinite(flat)
        if bad.any():
            run, k = np.argwhere(bad)[np.argmin(np.argwhere(bad)[:, 1])]
            if worst is None or k < worst[2]:
                worst = (name, run, k)
    if worst is None and params_finite:
        return
    if worst is not None:
        name, run, k = worst
        what = f"non-finite {name} at update {first_update + k}"
        who = labels[run]
    else:
        k = next(iter(metrics.values())).shape[-1] - 1
        what = f"non-finite parameters after update {first_update + k}"
        who = None
    where = "" if len(labels) == 1 or who is None else f" in run {_label_name(who)} {who}"
    raise NonFiniteError(
        f"{what}{where}: training stopped (try a lower lr or max_grad_norm, or check the "
        f"scale of rewards and observations); {last_checkpoint}"
    )


_RUN_FILES = ("config.yaml", "metrics.csv", "metrics.jsonl", ckpt.CHECKPOINT_DIR)


def _require_new_run_dir(run_dir: Path) -> None:
    """Refuse to start a fresh run in a directory that already holds one."""
    found = [name for name in _RUN_FILES if (run_dir / name).exists()]
    if found:
        raise ValueError(
            f"fit: out={str(run_dir)!r} already holds a run ({', '.join(found)}); continue "
            "it with resume=that directory (--resume), or choose a new directory"
        )


def _set_aside_newer_checkpoints(checkpointer: ckpt.Checkpointer, update: int) -> None:
    """Resuming from an older checkpoint: move the newer ones (from the abandoned
    continuation) out of the way, never deleting them."""
    newer = [s for s in checkpointer.steps() if s > update]
    if not newer:
        return
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    aside = checkpointer.directory.parent / f"{ckpt.CHECKPOINT_DIR}-after-{update}-{stamp}"
    aside.mkdir(parents=True)
    for step in newer:
        (checkpointer.directory / str(step)).rename(aside / str(step))
    checkpointer.reload()
    print(
        f"resume: continuing from update {update}; the newer checkpoints {newer} were "
        f"moved to {aside}",
        file=sys.stderr,
    )


def _fetch(tree: Any) -> Any:
    """Host numpy copy of arrays that are whole on this process (one device, or
    replicated across hosts: the local copy is the value)."""

    def one(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(x.addressable_data(0))
        return np.asarray(jax.device_get(x))

    return jax.tree.map(one, tree)


class _DataParallel:
    """fit's programs for one data-parallel run over a mesh axis (see train_sharded)."""

    def __init__(self, config: Config, mesh: Any, axis: str, num_seeds: int | None):
        from purejaxppo.scale.mesh import check_axis, data_parallel_check, state_specs

        if config.batch_shape or (num_seeds or 1) > 1:
            raise ValueError(
                "fit(mesh=...): one data-parallel run takes one config and one seed; for "
                "batches of runs use purejaxppo.train_sharded(..., runs_axis=...) or "
                "train_many"
            )
        data_parallel_check(config, check_axis(mesh, axis, "data_axis"), "fit(mesh=...)")
        self.mesh, self.axis = mesh, axis
        abstract = jax.eval_shape(init, config, jax.random.key(0))
        self.specs = state_specs(abstract, axis)

    def _shard_map(self, fn, in_specs, out_specs):
        return jax.shard_map(
            fn, mesh=self.mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False
        )

    def init(self, config: Config, key: jax.Array) -> TrainState:
        from purejaxppo.scale.mesh import key_data_and_impl, to_global

        data, impl = key_data_and_impl(key)
        program = jax.jit(
            self._shard_map(
                lambda c, kd: init(c, jax.random.wrap_key_data(kd, impl=impl), self.axis),
                (jax.P(), jax.P()),
                self.specs,
            )
        )
        return program(self.replicate(config), to_global(data, self.mesh, jax.P()))

    def replicate(self, tree: Any) -> Any:
        from purejaxppo.scale.mesh import to_global

        return to_global(tree, self.mesh, jax.P())

    def chunk(self, config: Config, state: TrainState, n: int) -> Callable:
        program = jax.jit(
            self._shard_map(
                lambda c, s: run_updates(c, s, n, self.axis),
                (jax.P(), self.specs),
                (self.specs, jax.P()),
            ),
            donate_argnums=1,
        )
        global_config = self.replicate(config)
        compiled = _compiled(program, global_config, state)
        return lambda _config, s: compiled(global_config, s)

    def put_state(self, host_state: TrainState) -> TrainState:
        """Host arrays of a checkpoint as the global sharded state."""
        from purejaxppo.scale.mesh import to_global

        data = jax.tree.map(
            lambda x: jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x,
            host_state,
        )
        placed = jax.tree.map(lambda x, spec: to_global(x, self.mesh, spec), data, self.specs)
        return placed._replace(key=jax.random.wrap_key_data(placed.key))

    def agree(self, flag: bool) -> bool:
        """Process 0's value of `flag`, on every process."""
        if jax.process_count() == 1:
            return flag
        from jax.experimental import multihost_utils

        return bool(multihost_utils.broadcast_one_to_all(np.asarray(flag)))

    def gather(self, state: TrainState) -> TrainState:
        """The whole state on every process (env rows gathered) as host arrays."""
        from jax.experimental import multihost_utils

        key = state.key
        state = state._replace(key=jax.random.key_data(key))
        if jax.process_count() == 1:
            host = jax.device_get(state)
        else:
            host = multihost_utils.process_allgather(state, tiled=True)
        return host._replace(key=jax.random.wrap_key_data(np.asarray(host.key)))


# ---- the runner ----------------------------------------------------------------------


def fit(
    config: Config,
    key: jax.Array | int = 0,
    *,
    num_seeds: int | None = None,
    out: str | Path | None = None,
    num_chunks: int = 10,
    chunk_updates: int | None = None,
    checkpoint_every: int | None = None,
    checkpoint_seconds: float = 60.0,
    keep_checkpoints: int | None = 3,
    resume: str | Path | None = None,
    resume_step: int | None = None,
    eval_every: int | None = None,
    eval_episodes: int = 10,
    eval_deterministic: bool = True,
    tensorboard: bool = False,
    wandb: bool | dict[str, Any] = False,
    progress: bool | None = None,
    verbose: bool = False,
    callbacks: Sequence[Callable[[ChunkReport], bool | None]] = (),
    plot: bool = True,
    export_policy: bool = True,
    compile_cache: bool | str | Path = True,
    mesh: Any = None,
    data_axis: str = "dp",
) -> FitResult:
    """Train like `train(config, key)`, in jitted chunks, with a host loop around them.

    key: a typed key, a legacy PRNGKey or an int seed. With num_seeds > 1 the runs use
    `jax.random.split(key, num_seeds)` and are vmapped; with num_seeds == 1 (the
    default, or the resumed run's count) the run uses `key` itself, so it equals
    `train(config, key)`. A batched config
    (`Config.sweep`) is vmapped too, each config with the same seeds.

    out: run directory. With it, fit writes `config.yaml`, per-update logs
    (`metrics.csv`/`.jsonl`, and `metrics_mean.*` for several runs), `eval.*`,
    orbax checkpoints under `checkpoints/` (every `checkpoint_every` updates; when
    None, at the first chunk end at least `checkpoint_seconds` after the previous
    checkpoint; 0: only at the end; always at the end; the last `keep_checkpoints`
    kept), the learning curve `learning_curve.png` and the final policy (`policy/` or
    `policies/<run>/`, see `load_policy`). Without it nothing is written.

    resume: a run directory (or its `checkpoints/` folder) to continue from its latest
    complete checkpoint (or `resume_step`; newer checkpoints are then moved to a
    `checkpoints-after-N-<time>/` folder, never deleted). The config must have the
    same static fields (else `CheckpointError` naming them) and num_seeds; `key` is
    then unused (the state carries its own). The continued run ends exactly as an
    uninterrupted one would. `out` defaults to the resumed run's directory, whose
    logs are cut back to the checkpoint before new rows are appended; another `out`
    must be a new directory. Without `resume`, an `out` that already holds a run is
    refused (nothing is overwritten).

    chunk_updates: updates per compiled chunk (default: the gcd of checkpoint_every
    and eval_every, else about num_updates / num_chunks).
    eval_every: evaluate every N updates (and at the end) on separate envs,
    `eval_episodes` episodes per run, logged as `eval/return`.
    tensorboard / wandb: also log there (wandb: True or wandb.init keyword arguments,
    e.g. {"mode": "offline"}).
    progress: a tqdm bar on stderr (None: only when stderr is a terminal).
    verbose: print one line per chunk (`str(ChunkReport)`).
    callbacks: called with each ChunkReport; returning False stops training after
    that chunk (a checkpoint is written first when `out` is set).
    compile_cache: JAX's persistent compilation cache (True: the default directory,
    a path, or False); see `purejaxppo.cache.enable_compile_cache`.

    A NaN or inf in the losses or parameters raises `NonFiniteError` naming the
    update; no checkpoint is written from the bad state.

    mesh: train one data-parallel run across the `data_axis` devices of this mesh
    (the layout of `purejaxppo.train_sharded`; one config, one seed), also across
    hosts after `purejaxppo.distributed.initialize`: every process runs every chunk
    and only process 0 writes files. Checkpoints hold the gathered env rows.
    """
    start = time.perf_counter()
    if not isinstance(config, Config):
        raise TypeError(f"fit: config must be a purejaxppo.Config, got {config!r}")
    _positive_or_none("num_seeds", num_seeds)
    _positive_or_none("eval_episodes", eval_episodes)
    _positive_or_none("resume_step", resume_step, allow_zero=True)
    _positive_or_none("keep_checkpoints", keep_checkpoints)
    num_updates = config.num_updates
    chunk = plan_chunk_updates(num_updates, num_chunks, chunk_updates, checkpoint_every, eval_every)
    if not (isinstance(checkpoint_seconds, int | float) and checkpoint_seconds >= 0):
        raise ValueError(f"checkpoint_seconds={checkpoint_seconds!r}: must be a number >= 0")
    dp = None if mesh is None else _DataParallel(config, mesh, data_axis, num_seeds)
    primary = jax.process_index() == 0
    resume_dir = None if resume is None else ckpt.checkpoint_dir(resume)
    if resume_dir is not None and out is None:
        out = resume_dir.parent
    run_dir = Path(out) if out is not None and primary else None  # only process 0 writes
    if (tensorboard or wandb) and out is None:
        raise ValueError("fit: tensorboard/wandb logging needs a run directory (out=...)")
    continuing = (
        resume_dir is not None
        and out is not None
        and (ckpt.checkpoint_dir(out).resolve() == resume_dir.resolve())
    )
    if run_dir is not None and not continuing:
        _require_new_run_dir(run_dir)
    plain = ckpt.plain_config(config)
    if compile_cache:
        from purejaxppo.io.cache import enable_compile_cache

        enable_compile_cache(compile_cache)

    # ---- starting point: a checkpoint (read and checked first), or fresh ------------
    history: list[dict[str, np.ndarray]] = []
    eval_updates: list[int] = []
    eval_returns: list[np.ndarray] = []
    eval_lengths: list[np.ndarray] = []
    checkpointer = None
    done = 0
    meta = None
    if resume_dir is not None:
        checkpointer = ckpt.Checkpointer(resume_dir, keep=keep_checkpoints, create=False)
        done, meta = checkpointer.read_meta(resume_step)
        where = checkpointer.directory / str(done)
        mismatch = ckpt.config_mismatch(meta["static"], config)
        if mismatch:
            raise ckpt.CheckpointError(
                f"cannot resume {where}: it was written by a config with different static "
                f"fields: {'; '.join(mismatch)}"
            )
        if num_seeds is None:
            num_seeds = meta["num_seeds"]
        layout = {"num_seeds": num_seeds, "batch_shape": list(config.batch_shape)}
        saved_layout = {k: meta[k] for k in layout}
        if saved_layout != layout:
            raise ckpt.CheckpointError(
                f"cannot resume {where}: it holds runs {saved_layout}, this call asks for {layout}"
            )
        saved_runner = meta["runner"]
        if meta["eval_count"] and eval_every:
            for name, now in (
                ("eval_episodes", eval_episodes),
                ("eval_deterministic", eval_deterministic),
            ):
                if saved_runner[name] != now:
                    raise ValueError(
                        f"fit: {name}={now!r} but the resumed run's evaluations used "
                        f"{saved_runner[name]!r}; keep it the same so the history is one series"
                    )
        changed = ckpt.traced_changes(meta.get("config"), config)
        if changed:
            print(
                f"resume: hyperparameters changed since the checkpoint: {', '.join(changed)}",
                file=sys.stderr,
            )
    num_seeds = 1 if num_seeds is None else num_seeds
    seeds, sweep = num_seeds > 1, config.batch_shape != ()
    lead = int(seeds) + int(sweep)
    batch = (*config.batch_shape, *((num_seeds,) if seeds else ()))
    labels = run_labels(config, num_seeds)
    num_runs = len(labels)

    # XLA:CPU's false cache-load errors are filtered out of stderr while compiling
    # (purejaxppo.cache.quiet_cache_loads), and around evaluations and saves.
    with quiet_cache_loads():
        key = jax.random.key(key) if isinstance(key, int | np.integer) else as_key(jnp.asarray(key))
        keys = jax.random.split(key, num_seeds) if seeds else key
        eval_root = jax.random.fold_in(key, 0x65766C)  # evaluation keys never touch training's
        if meta is not None:
            template = _checkpoint_template(*_abstract_run(config, num_seeds), meta)
            restored = checkpointer.restore(template, done)
            state = (
                dp.put_state(restored.arrays["state"])
                if dp is not None
                else jax.device_put(restored.arrays["state"])
            )
            if done:
                history.append(restored.arrays["metrics"])
            if meta["eval_count"]:
                ev = restored.arrays["eval"]
                eval_updates = [int(u) for u in ev["updates"]]
                eval_returns = list(np.moveaxis(ev["returns"], -2, 0))
                eval_lengths = list(np.moveaxis(ev["lengths"], -2, 0))
            eval_root = jax.random.wrap_key_data(np.asarray(meta["eval_key"], np.uint32))
        elif dp is not None:
            state = dp.init(config, key)
        else:
            state = _init_jit(config, keys, seeds, sweep)

    # ---- files -------------------------------------------------------------------
    logger = None
    if run_dir is not None:
        if continuing:
            _set_aside_newer_checkpoints(checkpointer, done)
        run_dir.mkdir(parents=True, exist_ok=True)
        if plain is not None:
            import yaml

            (run_dir / "config.yaml").write_text(yaml.safe_dump(plain, sort_keys=False))
        if not continuing:
            checkpointer = ckpt.Checkpointer(
                ckpt.checkpoint_dir(run_dir), keep=keep_checkpoints, create=True
            )
        from purejaxppo.io.loggers import RunLogger

        logger = RunLogger(
            run_dir,
            labels,
            tensorboard=tensorboard,
            wandb=wandb,
            config=plain,
            resume_from_update=done if continuing else None,
        )

    remaining = []
    at = done
    while at < num_updates:
        n = min(chunk - at % chunk, num_updates - at)
        remaining.append(n)
        at += n
    with quiet_cache_loads():
        compiled = {
            n: (
                dp.chunk(config, state, n)
                if dp is not None
                else _compiled(_run_chunk_jit, config, state, static=(n, seeds, sweep))
            )
            for n in set(remaining)
        }
        all_finite = _compiled(_all_finite_jit, state.params)
        evaluate_runs = None
        if eval_every:
            eval_keys = jax.random.split(eval_root, max(num_runs, 1))
            eval_keys = eval_keys.reshape(batch) if batch else eval_keys[0]
            evaluate_runs = _compiled(
                eval_runs_jit,
                config,
                state,
                eval_keys,
                static=(eval_episodes, eval_deterministic, seeds, sweep),
            )
        jax.block_until_ready(state)
    compile_seconds = time.perf_counter() - start

    bar = None
    if progress or (progress is None and sys.stderr.isatty()):
        from tqdm.auto import tqdm

        bar = tqdm(total=num_updates, initial=done, unit="update", dynamic_ncols=True)

    def say(line: str) -> None:
        if not verbose:
            return
        if bar is not None:
            bar.write(line)
        else:
            print(line, flush=True)

    last_checkpoint = (
        f"last good checkpoint: {checkpointer.directory / str(done)}"
        if checkpointer is not None and done in checkpointer.steps()
        else "no checkpoint was written"
    )

    def save(update: int, host_state: TrainState) -> Path:
        arrays = {"state": host_state, "metrics": _concat(history)}
        if eval_updates:
            arrays["eval"] = {
                "updates": np.asarray(eval_updates, np.int32),
                "returns": np.stack(eval_returns, axis=-2),
                "lengths": np.stack(eval_lengths, axis=-2),
            }
        meta = {
            "config": plain,
            "static": ckpt.static_fields_text(config),
            "num_seeds": num_seeds,
            "batch_shape": list(config.batch_shape),
            "num_updates": num_updates,
            "eval_count": len(eval_updates),
            "eval_key": np.asarray(jax.random.key_data(eval_root)).tolist(),
            "runner": {
                "chunk_updates": chunk_updates,
                "checkpoint_every": checkpoint_every,
                "checkpoint_seconds": checkpoint_seconds,
                "keep_checkpoints": keep_checkpoints,
                "eval_every": eval_every,
                "eval_episodes": eval_episodes,
                "eval_deterministic": eval_deterministic,
            },
        }
        with quiet_cache_loads():
            return checkpointer.save(update, arrays, meta)

    run_seconds = 0.0
    loop_start = last_save = time.perf_counter()
    try:
        for i, n in enumerate(remaining, start=1):
            first = done + 1
            t0 = time.perf_counter()
            state, metrics = compiled[n](config, state)
            metrics = _fetch(metrics)
            params_ok = bool(_fetch(all_finite(state.params)))
            run_seconds += time.perf_counter() - t0
            done += n
            history.append(metrics)
            if logger is not None:
                logger.log_updates(first, config.batch_size, _flat_runs(metrics, lead))
            _guard(metrics, params_ok, first, labels, lead, last_checkpoint)

            eval_mean = None
            if eval_every and (done % eval_every == 0 or done == num_updates):
                with quiet_cache_loads():
                    ekeys = jax.random.split(jax.random.fold_in(eval_root, done), max(num_runs, 1))
                    ekeys = ekeys.reshape(batch) if batch else ekeys[0]
                    result = _fetch(evaluate_runs(config, state, ekeys))
                eval_updates.append(done)
                eval_returns.append(result.returns)
                eval_lengths.append(result.lengths)
                eval_mean = float(np.mean(result.returns))
                if logger is not None:
                    logger.log_eval(
                        done,
                        done * config.batch_size,
                        _flat_runs(result.returns, lead),
                        _flat_runs(result.lengths, lead),
                    )

            report = ChunkReport(
                chunk=i,
                num_chunks=len(remaining),
                update=done,
                num_updates=num_updates,
                env_steps=done * config.batch_size,
                num_runs=num_runs,
                recent_return=nanmean(metrics["episode_return"][..., -min(n, RECENT_UPDATES) :]),
                steps_per_second=sum(remaining[:i])
                * config.batch_size
                * num_runs
                / max(run_seconds, 1e-9),
                elapsed=time.perf_counter() - start,
                compile_seconds=compile_seconds,
                metrics=metrics,
                eval_return=eval_mean,
            )
            due = (
                done == num_updates
                or (checkpoint_every and done % checkpoint_every == 0)
                or (
                    checkpoint_every is None
                    and time.perf_counter() - last_save >= checkpoint_seconds
                )
            )
            if dp is not None and out is not None:
                # Every process takes part in gathering the env rows, so all must agree
                # (the clocks of a time-based cadence do not): process 0 decides.
                due = dp.agree(bool(due))
                gathered = dp.gather(state) if due else None
            else:
                gathered = state
            if checkpointer is not None and due:
                path = save(done, gathered)
                last_save = time.perf_counter()
                last_checkpoint = f"last good checkpoint: {path}"
                report = dataclasses.replace(report, checkpoint=path)
            say(str(report))
            # Every callback sees the report (a list, not a short-circuiting any()).
            stop = any(answer is False for answer in [cb(report) for cb in callbacks])
            if dp is not None and out is not None:
                stop = dp.agree(stop)
            if stop and out is not None and report.checkpoint is None:
                gathered = dp.gather(state) if dp is not None else state
            if stop and checkpointer is not None and report.checkpoint is None:
                path = save(done, gathered)
                say(f"stopped by a callback after update {done}; checkpoint {path}")
            if bar is not None:
                bar.update(n)
                bar.set_postfix_str(
                    f"steps {report.env_steps:,} | {report.steps_per_second:,.0f}/s | "
                    f"return {report.recent_return:.1f}",
                    refresh=True,
                )
            if stop:
                break
    finally:
        if bar is not None:
            bar.close()
        if logger is not None:
            logger.close()

    loop_seconds = time.perf_counter() - loop_start
    all_metrics = _concat(history)
    evals = None
    if eval_updates:
        evals = EvalHistory(
            updates=np.asarray(eval_updates, np.int32),
            returns=np.stack(eval_returns, axis=-2),
            lengths=np.stack(eval_lengths, axis=-2),
        )
    # A collective when data-parallel: every process gathers, process 0 writes.
    state_for_files = dp.gather(state) if dp is not None and out is not None else state
    if run_dir is not None:
        with quiet_cache_loads():
            _finish_files(
                run_dir,
                config,
                state_for_files,
                all_metrics,
                evals,
                labels,
                seeds,
                sweep,
                plot,
                export_policy,
            )
    total_steps = sum(remaining) * config.batch_size * num_runs
    return FitResult(
        state=state,
        metrics=all_metrics,
        evals=evals,
        run_dir=run_dir,
        compile_seconds=compile_seconds,
        run_seconds=run_seconds,
        steps_per_second=total_steps / run_seconds if run_seconds > 0 else math.nan,
        loop_seconds=loop_seconds,
    )


def _checkpoint_template(
    abstract_state: Any, abstract_metrics: dict[str, Any], meta: dict[str, Any]
) -> dict[str, Any]:
    """Shapes and dtypes of a checkpoint's arrays, from the run layout and its meta."""
    done, n_eval = meta["update"], meta["eval_count"]
    template: dict[str, Any] = {
        "state": abstract_state,
        "metrics": {
            k: jax.ShapeDtypeStruct((*v.shape[:-1], done), v.dtype)
            for k, v in abstract_metrics.items()
        },
    }
    if n_eval:
        shape = (*abstract_state.update_step.shape, n_eval, meta["runner"]["eval_episodes"])
        template["eval"] = {
            "updates": jax.ShapeDtypeStruct((n_eval,), np.int32),
            "returns": jax.ShapeDtypeStruct(shape, np.float32),
            "lengths": jax.ShapeDtypeStruct(shape, np.int32),
        }
    return template


def _abstract_run(config: Config, num_seeds: int) -> tuple[Any, dict[str, Any]]:
    """Abstract (shape-only) TrainState and one-update metrics of a run layout."""
    seeds, sweep = num_seeds > 1, config.batch_shape != ()
    key = jax.random.key(0)
    keys = jax.random.split(key, num_seeds) if seeds else key
    state = jax.eval_shape(lambda c, k: _init_runs(c, k, seeds, sweep), config, keys)
    _, metrics = jax.eval_shape(lambda c, s: _run_chunk(c, s, 1, seeds, sweep), config, state)
    return state, metrics


@dataclasses.dataclass(frozen=True)
class LoadedRun:
    """A run read back from a checkpoint by `load_run`."""

    config: Config  # batched for a sweep
    state: TrainState  # leading axes [*config.batch_shape, num_seeds (if > 1)]
    num_seeds: int
    update: int  # updates completed at the checkpoint
    metrics: dict[str, np.ndarray]
    path: Path


def load_run(path: str | Path, step: int | None = None) -> LoadedRun:
    """Read the latest (or `step`) checkpoint of a run directory written by `fit`.

    The checkpoint's own config is used, so it must have a plain-data form (a
    registered env id); the arrays are verified against their checksum."""
    checkpointer = ckpt.Checkpointer(ckpt.checkpoint_dir(path), keep=None, create=False)
    update, meta = checkpointer.read_meta(step)
    if meta.get("config") is None:
        raise ckpt.CheckpointError(
            f"checkpoint {checkpointer.directory / str(update)} was written with a config "
            "holding Python objects (an Environment instance); resume it from Python with "
            "fit(config, resume=...)"
        )
    config = Config.from_dict(meta["config"])
    num_seeds = meta["num_seeds"]
    state, metrics = _abstract_run(config, num_seeds)
    restored = checkpointer.restore(_checkpoint_template(state, metrics, meta), update)
    return LoadedRun(
        config=config,
        state=jax.device_put(restored.arrays["state"]),
        num_seeds=num_seeds,
        update=update,
        metrics=restored.arrays["metrics"],
        path=restored.path,
    )


def _concat(history: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if not history:
        return {}
    return {k: np.concatenate([m[k] for m in history], axis=-1) for k in history[0]}


def _finish_files(
    run_dir: Path,
    config: Config,
    state: TrainState,
    metrics: dict[str, np.ndarray],
    evals: EvalHistory | None,
    labels: list[dict[str, Any]],
    seeds: bool,
    sweep: bool,
    plot: bool,
    export_policy: bool,
) -> None:
    """The learning-curve PNG and the exported policies, at the end of a run."""
    lead = int(seeds) + int(sweep)
    if plot and metrics:
        from purejaxppo.io.plots import plot_learning_curves

        updates = metrics["episode_return"].shape[-1]
        eval_points = None
        if evals is not None:
            eval_points = (
                evals.updates * config.batch_size,
                _flat_runs(evals.returns.mean(axis=-1), lead),
            )
        plot_learning_curves(
            run_dir / "learning_curve.png",
            np.arange(1, updates + 1) * config.batch_size,
            _flat_runs(metrics["episode_return"], lead),
            labels,
            eval_points=eval_points,
            title=str(config.env),
        )
    if export_policy and ckpt.plain_config(config) is not None:
        from purejaxppo.acting.export import save_policy

        configs = config.unstack()
        for label in labels:
            index = ((label["config"],) if sweep else ()) + ((label["seed"],) if seeds else ())
            one = jax.tree.map(lambda x, index=index: x[index], state) if index else state
            many = run_dir / "policies" / _label_name(label)
            save_policy(
                run_dir / "policy" if len(labels) == 1 else many, configs[label["config"]], one
            )
