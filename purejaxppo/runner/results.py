"""What `fit` reports: the per-chunk `ChunkReport`, the `EvalHistory`, the final
`FitResult`, and `NonFiniteError`."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from purejaxppo.core.types import TrainState


class NonFiniteError(FloatingPointError):
    """Training produced a NaN or inf; the message names the update."""


class InvalidMaskError(ValueError):
    """The env gave an action mask with no legal action; the message names the update."""


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

    @property
    def population_config(self):
        """With `pbt`: the members' final hyperparameters as a batched Config (what
        train_population returns as `config`); None for independent runs."""
        return self.state.pbt.hparams if self.state.pbt else None
