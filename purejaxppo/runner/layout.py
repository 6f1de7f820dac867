"""The layout of a `fit` run: seeds x sweep points (axes, labels, keys), the chunk
plan, and the default run directory."""

from __future__ import annotations

import dataclasses
import datetime
import math
from pathlib import Path
from typing import Any

import jax
import numpy as np

from purejaxppo.config import TRACED_FIELDS, Config
from purejaxppo.runner.options import check_count, check_multiples


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


def plan_chunk_updates(
    num_updates: int,
    num_chunks: int = 10,
    chunk_updates: int | None = None,
    checkpoint_every: int | None = None,
    eval_every: int | None = None,
    video_every: int | None = None,
) -> int:
    """Updates per chunk. Checkpoints, evaluations and videos happen at chunk ends, so
    their intervals must be multiples of it; without an explicit `chunk_updates` it is
    the gcd of the intervals given, else about num_updates / num_chunks."""
    check_count("chunk_updates", chunk_updates, low=1, optional=True)
    intervals = {
        "checkpoint_every": checkpoint_every,
        "eval_every": eval_every,
        "video_every": video_every,
    }
    for name, value in intervals.items():
        check_count(name, value, low=0, optional=True)
    check_multiples(chunk_updates, **intervals)
    intervals = [v for v in intervals.values() if v]
    if chunk_updates is None:
        if intervals:
            return min(math.gcd(*intervals), num_updates)
        return chunk_lengths(num_updates, num_chunks)[0]
    return min(chunk_updates, num_updates)


def remaining_chunks(done: int, num_updates: int, chunk: int) -> list[int]:
    """Lengths of the chunks from update `done` on: back onto multiples of `chunk`
    first (a resume from a checkpoint off the grid), the last one shorter."""
    lengths, at = [], done
    while at < num_updates:
        n = min(chunk - at % chunk, num_updates - at)
        lengths.append(n)
        at += n
    return lengths


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


def label_name(label: dict[str, Any]) -> str:
    """`c<config>_s<seed>`: a run's name in file and folder names."""
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


def nanmean(x: np.ndarray) -> float:
    """Mean of the non-NaN entries; NaN when there are none (no warning)."""
    finite = x[~np.isnan(x)]
    return float(finite.mean()) if finite.size else math.nan


@dataclasses.dataclass(frozen=True)
class RunLayout:
    """Runs trained side by side: the sweep's configs x seeds, in that axis order.

    `batch` is the leading shape of the state and metrics ([*config.batch_shape,
    num_seeds (only if > 1)]); `lead` is its length."""

    batch_shape: tuple[int, ...]
    num_seeds: int
    labels: list[dict[str, Any]]

    @classmethod
    def of(cls, config: Config, num_seeds: int) -> RunLayout:
        return cls(tuple(config.batch_shape), num_seeds, run_labels(config, num_seeds))

    @property
    def seeds(self) -> bool:
        return self.num_seeds > 1

    @property
    def sweep(self) -> bool:
        return self.batch_shape != ()

    @property
    def batch(self) -> tuple[int, ...]:
        return (*self.batch_shape, *((self.num_seeds,) if self.seeds else ()))

    @property
    def lead(self) -> int:
        return len(self.batch)

    @property
    def num_runs(self) -> int:
        return len(self.labels)

    def seed_keys(self, key: jax.Array) -> jax.Array:
        """The training keys: `key` itself for one seed (so fit equals train)."""
        return jax.random.split(key, self.num_seeds) if self.seeds else key

    def run_keys(self, key: jax.Array) -> jax.Array:
        """One key per run, shaped like the batch (evaluation keys)."""
        keys = jax.random.split(key, max(self.num_runs, 1))
        return keys.reshape(self.batch) if self.batch else keys[0]

    def flat(self, tree: Any) -> Any:
        """Merge the batch axes into one run axis (the order of `labels`)."""
        return jax.tree.map(lambda x: np.reshape(x, (-1, *np.shape(x)[self.lead :])), tree)

    def index(self, label: dict[str, Any]) -> tuple[int, ...]:
        """The batch index of one run."""
        return ((label["config"],) if self.sweep else ()) + ((label["seed"],) if self.seeds else ())

    def one_run(self, config: Config, state: Any, label: dict[str, Any]) -> tuple[Config, Any]:
        """(config, state) of the run `label` out of the batched config and state."""
        index = self.index(label)
        one = jax.tree.map(lambda x: x[index], state) if index else state
        return config.unstack()[label["config"]], one
