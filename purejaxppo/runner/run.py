"""The state of a `fit` in progress, shared by its hooks: the run's layout and files,
the training state, the history of metrics and evaluations, and the clocks."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from purejaxppo.config import Config
from purejaxppo.core.types import TrainState
from purejaxppo.io import checkpoints as ckpt
from purejaxppo.runner.layout import RunLayout, nanmean
from purejaxppo.runner.options import FitOptions
from purejaxppo.runner.program import Program
from purejaxppo.runner.results import ChunkReport, EvalHistory

# A chunk's "recent return" averages over (at most) its last this many updates.
RECENT_UPDATES = 10


def concat_metrics(history: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Chunks' metrics joined along the update axis (the last)."""
    if not history:
        return {}
    return {k: np.concatenate([m[k] for m in history], axis=-1) for k in history[0]}


@dataclasses.dataclass
class EvalLog:
    """The evaluations so far: one entry per evaluation, [*batch, episodes] arrays."""

    updates: list[int] = dataclasses.field(default_factory=list)
    returns: list[np.ndarray] = dataclasses.field(default_factory=list)
    lengths: list[np.ndarray] = dataclasses.field(default_factory=list)

    @classmethod
    def restored(cls, arrays: dict[str, Any] | None) -> EvalLog:
        """From a checkpoint's `eval` arrays (None: no evaluation yet)."""
        if arrays is None:
            return cls()
        return cls(
            [int(u) for u in arrays["updates"]],
            list(np.moveaxis(arrays["returns"], -2, 0)),
            list(np.moveaxis(arrays["lengths"], -2, 0)),
        )

    def history(self) -> EvalHistory | None:
        if not self.updates:
            return None
        return EvalHistory(
            updates=np.asarray(self.updates, np.int32),
            returns=np.stack(self.returns, axis=-2),
            lengths=np.stack(self.lengths, axis=-2),
        )


@dataclasses.dataclass
class ChunkEvent:
    """One chunk just trained, as the hooks see (and annotate) it."""

    index: int  # 1-based
    first: int  # the chunk's first update (1-based)
    n: int  # its number of updates
    seconds: float  # its run time (device plus fetching the metrics)
    metrics: dict[str, np.ndarray]  # [*batch, n]
    params_finite: bool
    eval_return: float | None = None
    checkpoint: Path | None = None
    stop: bool = False  # a callback asked to stop after this chunk

    @property
    def done(self) -> int:
        return self.first - 1 + self.n


@dataclasses.dataclass
class Run:
    """A fit in progress (mutable: the loop and the hooks advance it)."""

    config: Config
    options: FitOptions
    layout: RunLayout
    program: Program
    state: TrainState
    eval_root: jax.Array
    done: int
    remaining: list[int]  # chunk lengths from `done` on
    out: Path | None  # the run directory on every process (None: no files)
    run_dir: Path | None  # the same on process 0 (the one that writes), else None
    checkpointer: ckpt.Checkpointer | None  # writes (process 0 only)
    history: list[dict[str, np.ndarray]]
    evals: EvalLog
    last_checkpoint: str  # for the non-finite guard's message
    started: float  # perf_counter when fit started
    compile_seconds: float = 0.0
    run_seconds: float = 0.0  # chunk calls only
    trained_updates: int = 0  # by this call (a resumed run's earlier ones not counted)

    @property
    def num_updates(self) -> int:
        return self.config.num_updates

    def report(self, event: ChunkEvent) -> ChunkReport:
        """The ChunkReport of `event` as the hooks have annotated it so far."""
        config, runs = self.config, self.layout.num_runs
        steps = sum(self.remaining[: event.index]) * config.batch_size * runs
        return ChunkReport(
            chunk=event.index,
            num_chunks=len(self.remaining),
            update=event.done,
            num_updates=self.num_updates,
            env_steps=event.done * config.batch_size,
            num_runs=runs,
            recent_return=nanmean(
                event.metrics["episode_return"][..., -min(event.n, RECENT_UPDATES) :]
            ),
            steps_per_second=steps / max(self.run_seconds, 1e-9),
            elapsed=time.perf_counter() - self.started,
            compile_seconds=self.compile_seconds,
            metrics=event.metrics,
            eval_return=event.eval_return,
            checkpoint=event.checkpoint,
        )

    def save(self, update: int, host_state: TrainState) -> Path:
        """Write a checkpoint of everything a resume needs (process 0)."""
        arrays = {"state": host_state, "metrics": concat_metrics(self.history)}
        evals = self.evals.history()
        if evals is not None:
            arrays["eval"] = dataclasses.asdict(evals)
        meta = {
            "config": ckpt.plain_config(self.config),
            "static": ckpt.static_fields_text(self.config),
            "num_seeds": self.layout.num_seeds,
            "batch_shape": list(self.config.batch_shape),
            "num_updates": self.num_updates,
            "eval_count": len(self.evals.updates),
            "eval_key": np.asarray(jax.random.key_data(self.eval_root)).tolist(),
            "runner": self.options.saved(self.layout.num_seeds),
        }
        path = self.program.quietly(self.checkpointer.save, update, arrays, meta)
        self.last_checkpoint = f"last good checkpoint: {path}"
        return path
