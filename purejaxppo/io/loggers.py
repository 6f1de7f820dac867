"""RunLogger: the one fan-out for the logs of R PPO runs trained side by side (the configs
of a sweep x seeds). It validates what it is given, computes the per-config (group)
means and hands the same `Rows` to every writer (`purejaxppo.io.writers`): CSV/JSONL
files always, TensorBoard and Weights & Biases on request. numpy only (no JAX).

`RunLogger(run_dir, runs)` names each run by a label dict such as
`{"run": 3, "config": 1, "seed": 1, "lr": 0.0003}` and writes:

    run_dir/
      metrics.csv, metrics.jsonl            one row per (update, run)
      metrics_mean.csv, metrics_mean.jsonl  R > 1: one row per (update, group)
      eval.csv, eval.jsonl                  one row per (evaluation, run)
      eval_mean.csv, eval_mean.jsonl        R > 1: one row per (evaluation, group)
      tb/                                   tensorboard=True: TensorBoard event files
      wandb/, wandb_run_ids.json            wandb=...: the W&B runs (one per run) and ids

Columns: `update` (1-based count of updates completed), `env_steps` (env steps of that
run so far), the run labels, then the metrics in the order of the first `log_updates`
call, then `fps` and `wall_time` if that call passed them (eval files: `eval/return`,
`eval/return_std`, `eval/return_min`, `eval/return_max`, `eval/length`). Rows are ordered
by update, then by run (group) in the order of `runs`. A label key equal to another
column of the same file (a swept `lr` next to the `lr` metric, which is the scheduled
learning rate) is written as `label/<key>`. A metric named `env_steps` is not repeated:
it is the `env_steps` column. `fps` (env steps per second) and `wall_time` (seconds
since training started) are measured per call by the caller and sit on the rows of the
call's last update, NaN (empty in JSON: null) on the others.

TensorBoard and W&B use the tags of `writers.TAGS` (Stable-Baselines3's names:
`rollout/ep_rew_mean`, `train/value_loss`, `time/fps`, `eval/mean_reward`, ...) with the
env steps of one run as the x-axis.

Non-finite values: CSV writes `nan`, `inf`, `-inf`; JSONL writes `null` (read back as
NaN by `read_jsonl`). Groups: runs sharing `runs[i][group_key]` (the seeds of one
config), in order of first appearance; if no run has `group_key`, all runs form one
group. A `*_mean` row holds the group's label values shared by all its runs, and for
every other column the mean over the group's runs, NaN ignored (NaN when all are NaN).
Means of float32 columns are rounded to float32. Files are flushed after every call; a
line cut by a kill during a write is dropped on resume (and by the readers).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from purejaxppo.io.labels import Group, Layout, group_legend_labels, group_runs, run_names
from purejaxppo.io.tables import nan_stats, nanmean, out_dtype, read_csv, read_jsonl
from purejaxppo.io.writers import (
    TAGS,
    WANDB_IDS_FILE,
    FileWriter,
    Rows,
    TensorBoardWriter,
    WandbWriter,
    Writer,
)

__all__ = [
    "EVAL_COLUMNS",
    "TAGS",
    "TIME_COLUMNS",
    "WANDB_IDS_FILE",
    "Group",
    "RunLogger",
    "group_legend_labels",
    "group_runs",
    "nanmean",
    "read_csv",
    "read_jsonl",
    "run_names",
]

EVAL_COLUMNS = (
    "eval/return",
    "eval/return_std",
    "eval/return_min",
    "eval/return_max",
    "eval/length",
)
TIME_COLUMNS = ("fps", "wall_time")


def _runs_axis(x: Any, num_runs: int, name: str, where: str) -> np.ndarray:
    """`x` [..., N] with the R runs on the leading axes (C order) as an [R, N] array."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{where}: {name} has dtype {arr.dtype}: must be numeric")
    if arr.ndim == 1 and num_runs == 1:
        arr = arr[None]
    if arr.ndim < 2 or math.prod(arr.shape[:-1]) != num_runs or arr.shape[-1] == 0:
        raise ValueError(
            f"{where}: {name} has shape {arr.shape}: must be [R, N] (or [..., N] with R "
            f"runs on the leading axes) with R={num_runs} runs and N >= 1"
        )
    return arr.reshape(num_runs, arr.shape[-1])


def _nonnegative_int(value: Any, name: str, where: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{where}: {name}={value!r}: must be an integer >= {minimum}")
    return int(value)


def _seconds_or_rate(value: Any, name: str, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{where}: {name}={value!r}: must be a number or None")
    if not value >= 0:  # also refuses NaN
        raise ValueError(f"{where}: {name}={value!r}: must be >= 0")
    return float(value)


class RunLogger:
    """Per-update metrics and evaluations of R runs to CSV/JSONL files under `run_dir`
    (see the module docstring for the layout), and optionally to TensorBoard and W&B.

    runs: one label dict per run, in the order of the runs axis of the logged arrays.
    tensorboard: also write TensorBoard event files (needs tensorboardX) under
        `run_dir/tb`: one run -> `tb/` itself; several runs -> `tb/<run name>` per run
        (`run_names`, e.g. `tb/c0_s1`) and `tb/<group name>_mean` per group of more than
        one run (e.g. `tb/c0_mean`), so TensorBoard overlays them. Tags from
        `writers.TAGS`; the step is env_steps; NaN values are skipped.
    wandb: True or a dict of `wandb.init` keyword arguments (e.g. `{"project": "ppo",
        "mode": "offline"}`; WANDB_MODE=offline works too). One W&B run per logged run,
        named by its run name (`c0_s1`) with `group=` its config group (`c0`), so W&B
        draws the mean and band over seeds itself; tags from `writers.TAGS`, x-axis
        `env_steps`, NaN values skipped (see `writers.WandbWriter`).
    config: the configuration recorded in each W&B run (`wandb.init(config=...)`).
    resume_from_update: continue a run_dir after a crash from a checkpoint at this
        update: rows with update > resume_from_update are removed first (each file
        rewritten atomically) and logging continues after them; 0 starts over. Without
        it, a run_dir that already holds logs is an error. TensorBoard: new event files
        are added next to the old ones, starting with a restart marker at step 1 + the
        last kept env_steps (tensorboardX's purge_step), from which TensorBoard's
        loader discards the old events (the old files are not edited). W&B: the runs
        whose ids are stored in `run_dir/wandb_run_ids.json` are continued
        (`resume="allow"`) unless the wandb dict names `id` or `resume`; rows they
        already received after the checkpoint stay in W&B.
    group_key: the label that groups runs (the seeds of a config) for the means.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        runs: Sequence[Mapping[str, Any]],
        *,
        tensorboard: bool = False,
        wandb: bool | Mapping[str, Any] = False,
        config: Mapping[str, Any] | None = None,
        resume_from_update: int | None = None,
        group_key: str = "config",
    ):
        layout = Layout.of(runs, group_key, "RunLogger")
        if resume_from_update is not None:
            resume_from_update = _nonnegative_int(
                resume_from_update, "resume_from_update", "RunLogger"
            )
        if not isinstance(tensorboard, bool):
            raise TypeError(f"RunLogger: tensorboard={tensorboard!r}: must be True or False")
        if not isinstance(wandb, bool | Mapping):
            raise TypeError(f"RunLogger: wandb={wandb!r}: must be a bool or a dict of kwargs")
        self.run_dir = Path(run_dir)
        self.layout = layout
        self.runs, self.run_names, self.groups = layout.runs, layout.names, layout.groups
        self.num_runs = layout.num_runs
        self.group_key = group_key
        self.resume_from_update = resume_from_update
        self._closed = False
        self._columns: list[str] | None = None  # metric (+ time) columns, fixed by call 1
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.files = FileWriter(self.run_dir, layout, resume_from_update)
        # A resumed file keeps its time columns, whatever the first call passes.
        header = self.files.tables["metrics"].header
        self._times = None if header is None else [t for t in TIME_COLUMNS if t in header]
        self.writers: list[Writer] = [self.files]
        if resume_from_update is None:
            self._refuse_existing_logs(tensorboard)
        try:
            self._open_writers(tensorboard, wandb, config)
        except BaseException:
            self.close(exit_code=1)
            raise

    def _refuse_existing_logs(self, tensorboard: bool) -> None:
        existing = self.files.existing()
        if tensorboard and TensorBoardWriter.existing(self.run_dir / "tb"):
            existing.append("tb/")
        if existing:
            raise FileExistsError(
                f"RunLogger: run_dir={str(self.run_dir)!r} already holds logs ({existing}): "
                "pass resume_from_update=<checkpoint update> to continue them, "
                "resume_from_update=0 to start over, or use a new run_dir"
            )

    def _open_writers(
        self, tensorboard: bool, wandb: bool | Mapping[str, Any], config: Mapping[str, Any] | None
    ) -> None:
        resuming = self.resume_from_update is not None
        if tensorboard:
            purge = None
            if resuming:
                steps = self.files.max_env_steps()
                purge = steps + 1 if steps >= 0 else 0
            self.writers.append(TensorBoardWriter(self.run_dir / "tb", self.layout, purge))
        if wandb is not False:
            kwargs = {} if wandb is True else dict(wandb)
            self.writers.append(WandbWriter(self.run_dir, self.layout, kwargs, config, resuming))

    # -- logging ----------------------------------------------------------------------

    def log_updates(
        self,
        first_update: int,
        env_steps_per_update: int,
        metrics: Mapping[str, np.ndarray],
        *,
        fps: float | None = None,
        wall_time: float | None = None,
    ) -> None:
        """Append updates first_update .. first_update + K - 1 of every run.

        metrics: name -> [R, K] array (or [..., K] with the R runs on the leading axes
            in C order, e.g. [configs, seeds, K]); NaN where undefined (no episode
            ended). The names are fixed by the first call.
        first_update: 1-based number of the first of these updates; must follow the
            updates already logged.
        env_steps_per_update: env steps of one run per update (`update * this` is the
            `env_steps` column).
        fps, wall_time: env steps per second and seconds since training started, as
            measured by the caller for this call; logged at its last update (columns
            `fps`, `wall_time`; tags `time/fps`, `time/time_elapsed`). Whether the
            columns exist is fixed by the first call (on resume: by the kept file); a
            call without them leaves them NaN.
        """
        where = "RunLogger.log_updates"
        self._check_open(where)
        first = _nonnegative_int(first_update, "first_update", where, minimum=1)
        per_update = _nonnegative_int(env_steps_per_update, "env_steps_per_update", where)
        times = {
            "fps": _seconds_or_rate(fps, "fps", where),
            "wall_time": _seconds_or_rate(wall_time, "wall_time", where),
        }
        values = self._check_metrics(metrics, times, where)
        last = self.files.last_update("metrics")
        if first <= last:
            raise ValueError(
                f"{where}: first_update={first}: updates up to {last} are already "
                "logged; each update is logged once (pass resume_from_update to rewind)"
            )
        updates = list(range(first, first + next(iter(values.values())).shape[1]))
        self._append("metrics", updates, [u * per_update for u in updates], values)

    def log_eval(
        self, update: int, env_steps: int, returns: np.ndarray, lengths: np.ndarray
    ) -> None:
        """Append one evaluation of every run after `update` updates (`env_steps` env
        steps per run): returns and lengths [R, E] (or [..., E]) of E episodes per run.
        Per run: mean, std, min and max of the returns and the mean length (NaN ignored).
        """
        where = "RunLogger.log_eval"
        self._check_open(where)
        update = _nonnegative_int(update, "update", where)
        env_steps = _nonnegative_int(env_steps, "env_steps", where)
        returns = _runs_axis(returns, self.num_runs, "returns", where)
        lengths = _runs_axis(lengths, self.num_runs, "lengths", where)
        if lengths.shape != returns.shape:
            raise ValueError(
                f"{where}: lengths has shape {lengths.shape}, returns {returns.shape}: "
                "they must match"
            )
        last = self.files.last_update("eval")
        if update <= last:
            raise ValueError(
                f"{where}: update={update}: an evaluation at update {last} is "
                "already logged; evaluations must be logged at increasing updates"
            )
        stats = nan_stats(returns, axis=1)
        dtype = out_dtype(returns.dtype)
        per_run = {
            "eval/return": stats["mean"].astype(dtype),
            "eval/return_std": stats["std"].astype(dtype),
            "eval/return_min": stats["min"].astype(dtype),
            "eval/return_max": stats["max"].astype(dtype),
            "eval/length": nanmean(lengths, axis=1).astype(out_dtype(lengths.dtype)),
        }
        self._append("eval", [update], [env_steps], {n: v[:, None] for n, v in per_run.items()})

    def _append(
        self, table: str, updates: list[int], env_steps: list[int], runs: dict[str, np.ndarray]
    ) -> None:
        """The one append path: group means, then the same rows to every writer."""
        groups = {}
        if self.num_runs > 1:
            groups = {name: self._group_means(v) for name, v in runs.items()}
        rows = Rows(table, updates, env_steps, runs, groups)
        for writer in self.writers:
            writer.write(rows)

    # -- helpers ----------------------------------------------------------------------

    def _check_open(self, where: str) -> None:
        if self._closed:
            raise RuntimeError(f"{where}: the RunLogger for {str(self.run_dir)!r} is closed")

    def _check_metrics(
        self, metrics: Mapping[str, Any], times: dict[str, float | None], where: str
    ) -> dict[str, np.ndarray]:
        """[R, K] arrays of the metrics, then of the time columns, in the column order."""
        if not isinstance(metrics, Mapping) or not metrics:
            raise ValueError(f"{where}: metrics={metrics!r}: must be a non-empty dict of arrays")
        out = {}
        for name, value in metrics.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"{where}: metric name {name!r}: must be a non-empty string")
            if name == "update" or name in TIME_COLUMNS:
                raise ValueError(f"{where}: metric name {name!r} is reserved for the column")
            if name != "env_steps":  # the env_steps column already holds it
                out[name] = _runs_axis(value, self.num_runs, f"metrics[{name!r}]", where)
        if not out:
            raise ValueError(f"{where}: metrics has only 'env_steps': nothing to log")
        lengths = {name: v.shape[1] for name, v in out.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(
                f"{where}: metrics have different numbers of updates {lengths}: must be equal"
            )
        if self._columns is None:
            if self._times is None:
                self._times = [t for t in TIME_COLUMNS if times[t] is not None]
            self._columns = [*out, *self._times]
        names = [c for c in self._columns if c not in TIME_COLUMNS]
        if set(out) != set(names):
            raise ValueError(
                f"{where}: metrics {sorted(out)} differ from the first call's "
                f"{sorted(names)}: every call must log the same metrics"
            )
        for name, value in times.items():
            if value is not None and name not in self._columns:
                raise ValueError(
                    f"{where}: {name}={value!r}: the first call logged no {name!r}, so this "
                    "run's files have no such column; pass it on every call or never"
                )
        num = next(iter(lengths.values()))
        for name in self._columns[len(names) :]:
            column = np.full((self.num_runs, num), np.nan)
            column[:, -1] = np.nan if times[name] is None else times[name]
            out[name] = column
        return {name: out[name] for name in self._columns}

    def _group_means(self, x: np.ndarray) -> np.ndarray:
        """[R, K] -> [G, K]: nanmean over each group's runs."""
        out = np.stack([nanmean(x[list(g.runs)], axis=0) for g in self.groups])
        return out.astype(out_dtype(x.dtype))

    # -- closing ----------------------------------------------------------------------

    def close(self, exit_code: int = 0) -> None:
        """Close the files and writers and finish the W&B runs (with `exit_code`).
        Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        writers, self.writers = self.writers, []
        for writer in writers:
            writer.close(exit_code=exit_code)

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(exit_code=0 if exc_type is None else 1)
