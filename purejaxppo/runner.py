"""Host-side training loop: the pure update, run in jitted chunks with progress reports.

`train_chunked` runs exactly the arithmetic of `train` (the same `init` and
`run_updates`), with the updates split into a few compiled chunks so the host can
report progress between them. Seeds (and batched `Config.sweep` configs) are
vmapped inside each chunk, so every chunk is still one compiled call.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo.config import Config
from purejaxppo.train import as_key, init, run_updates
from purejaxppo.types import TrainOutput, TrainState

# A chunk's "recent return" averages over (at most) its last this many updates.
RECENT_UPDATES = 10


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
    elapsed: float  # seconds since train_chunked started, compilation included
    compile_seconds: float  # init plus compiling the chunk program(s)
    metrics: dict[str, np.ndarray]  # this chunk's metrics, update axis last

    def __str__(self) -> str:
        width = len(str(self.num_updates))
        total_steps = self.env_steps // max(self.update, 1) * self.num_updates
        ret = "n/a" if math.isnan(self.recent_return) else f"{self.recent_return:.1f}"
        line = (
            f"update {self.update:>{width}}/{self.num_updates} | "
            f"env steps {self.env_steps:>{len(f'{total_steps:,}')},} | "
            f"return {ret:>7} | {self.steps_per_second:>12,.0f} steps/s"
        )
        if self.chunk == 1:
            line += f" | compile {self.compile_seconds:.1f} s"
        return line


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


_init_jit = jax.jit(_init_runs, static_argnums=(2, 3))
_run_chunk_jit = jax.jit(_run_chunk, static_argnums=(2, 3, 4), donate_argnums=1)


def nanmean(x: np.ndarray) -> float:
    """Mean of the non-NaN entries; NaN when there are none (no warning)."""
    finite = x[~np.isnan(x)]
    return float(finite.mean()) if finite.size else math.nan


def train_chunked(
    config: Config,
    key: jax.Array | int = 0,
    num_seeds: int = 1,
    num_chunks: int = 10,
    callback: Callable[[ChunkReport], Any] | None = None,
) -> TrainOutput:
    """Train like `train(config, key)`, in about `num_chunks` jitted chunks.

    key: a typed key, a legacy PRNGKey or an int seed. With num_seeds > 1 the runs
    use `jax.random.split(key, num_seeds)` and are vmapped; with num_seeds == 1 the
    run uses `key` itself, so it equals `train(config, key)`. A batched config
    (`Config.sweep`) is vmapped too, each config with the same seeds.

    callback: called with a `ChunkReport` after each chunk (`callback=print` prints
    one progress line per chunk).

    Returns TrainOutput(state, metrics): metrics are host numpy arrays of shape
    [*config.batch_shape, num_seeds (only if > 1), num_updates].
    """
    if not isinstance(config, Config):
        raise TypeError(f"train_chunked: config must be a purejaxppo.Config, got {config!r}")
    if isinstance(num_seeds, bool) or not isinstance(num_seeds, int) or num_seeds < 1:
        raise ValueError(f"train_chunked: num_seeds={num_seeds!r}: must be a positive integer")
    lengths = chunk_lengths(config.num_updates, num_chunks)

    start = time.perf_counter()
    key = jax.random.key(key) if isinstance(key, int | np.integer) else as_key(jnp.asarray(key))
    seeds, sweep = num_seeds > 1, config.batch_shape != ()
    keys = jax.random.split(key, num_seeds) if seeds else key
    num_runs = num_seeds * math.prod(config.batch_shape)

    state = _init_jit(config, keys, seeds, sweep)
    # Compile ahead of time so the compile cost is measured exactly and kept out of
    # the steps/s figures.
    compiled = {
        n: _run_chunk_jit.lower(config, state, n, seeds, sweep).compile() for n in set(lengths)
    }
    jax.block_until_ready(state)
    compile_seconds = time.perf_counter() - start

    chunks: list[dict[str, np.ndarray]] = []
    run_seconds, done = 0.0, 0
    for i, n in enumerate(lengths, start=1):
        t0 = time.perf_counter()
        state, metrics = compiled[n](config, state)
        metrics = jax.device_get(metrics)
        run_seconds += time.perf_counter() - t0
        done += n
        chunks.append(metrics)
        if callback is not None:
            recent = metrics["episode_return"][..., -min(n, RECENT_UPDATES) :]
            callback(
                ChunkReport(
                    chunk=i,
                    num_chunks=len(lengths),
                    update=done,
                    num_updates=config.num_updates,
                    env_steps=done * config.batch_size,
                    num_runs=num_runs,
                    recent_return=nanmean(recent),
                    steps_per_second=done * config.batch_size * num_runs / run_seconds,
                    elapsed=time.perf_counter() - start,
                    compile_seconds=compile_seconds,
                    metrics=metrics,
                )
            )
    metrics = {k: np.concatenate([m[k] for m in chunks], axis=-1) for k in chunks[0]}
    return TrainOutput(state, metrics)
