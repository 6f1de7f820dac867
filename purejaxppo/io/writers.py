"""Log writers: where the rows RunLogger hands out are written. numpy only at import time;
tensorboardX and wandb are imported when their writer is opened.

Every writer gets the same `Rows` (K logged steps of every run, and the per-group means)
and writes them its own way:

    FileWriter         run_dir/<table>.csv, <table>.jsonl: one row per (step, run);
                       run_dir/<table>_mean.csv, .jsonl (R > 1): one row per (step, group).
                       Columns: update, env_steps, the run labels (or the group's shared
                       labels), then the value columns, under their own names.
    TensorBoardWriter  run_dir/tb/ (one run) or tb/<run name>/ per run and
                       tb/<group name>_mean/ per group of more than one run; one event
                       per step, global step = env steps of one run, tags from TAGS.
    WandbWriter        one W&B run per logged run (seed), named by its run name and
                       grouped (`group=`) by its config group, tags from TAGS, x-axis
                       `env_steps`; the run ids in run_dir/wandb_run_ids.json for resume.

TAGS is the one mapping from our column names to the TensorBoard/W&B tags, in the names
Stable-Baselines3 users know (`rollout/ep_rew_mean`, `train/value_loss`, `time/fps`,
`eval/mean_reward`, ...). A column not in it is tagged `train/<name>`, or kept as it is
when it already holds a `/`. NaN values are skipped by TensorBoard and W&B.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from purejaxppo.io.labels import Layout
from purejaxppo.io.tables import TableFile, atomic_write, to_python

# column -> (TensorBoard / W&B tag, factor applied to the value). SB3 logs `entropy_loss`
# as MINUS the mean entropy (the term its loss adds); our `entropy` column is the mean
# entropy, so its tag carries the factor -1 and curves read like SB3's.
TAGS: dict[str, tuple[str, float]] = {
    "episode_return": ("rollout/ep_rew_mean", 1.0),
    "episode_length": ("rollout/ep_len_mean", 1.0),
    "episodes": ("rollout/episodes", 1.0),
    "policy_loss": ("train/policy_gradient_loss", 1.0),
    "value_loss": ("train/value_loss", 1.0),
    "entropy": ("train/entropy_loss", -1.0),
    "approx_kl": ("train/approx_kl", 1.0),
    "kl": ("train/kl", 1.0),
    "clip_frac": ("train/clip_fraction", 1.0),
    "explained_variance": ("train/explained_variance", 1.0),
    "lr": ("train/learning_rate", 1.0),
    "clip_eps": ("train/clip_range", 1.0),
    "ent_coef": ("train/ent_coef", 1.0),
    "beta": ("train/beta", 1.0),
    "updates_done": ("train/updates_done", 1.0),
    "early_stopped": ("train/early_stopped", 1.0),
    "fps": ("time/fps", 1.0),
    "wall_time": ("time/time_elapsed", 1.0),
    "eval/return": ("eval/mean_reward", 1.0),
    "eval/return_std": ("eval/std_reward", 1.0),
    "eval/return_min": ("eval/min_reward", 1.0),
    "eval/return_max": ("eval/max_reward", 1.0),
    "eval/length": ("eval/mean_ep_length", 1.0),
}
WANDB_IDS_FILE = "wandb_run_ids.json"


def tag_of(column: str) -> tuple[str, float]:
    """The TensorBoard/W&B tag of a column and the factor its values are scaled by."""
    if column in TAGS:
        return TAGS[column]
    return (column if "/" in column else f"train/{column}"), 1.0


@dataclasses.dataclass(frozen=True)
class Rows:
    """One append to a table: K steps of every run and, for R > 1, of every group."""

    table: str  # "metrics" or "eval"
    updates: list[int]  # [K] updates completed at each step
    env_steps: list[int]  # [K] env steps of one run at each step
    runs: dict[str, np.ndarray]  # column -> [R, K], the runs in Layout order
    groups: dict[str, np.ndarray]  # column -> [G, K] group means (NaN ignored); {} if R == 1


class Writer(Protocol):
    """A destination of logged rows."""

    def write(self, rows: Rows) -> None:
        """Write (and flush) the rows of one append."""

    def close(self, exit_code: int = 0) -> None:
        """Flush and release the destination; `exit_code` != 0 marks a failed run."""


def import_optional(module: str, argument: str, pip: str) -> ModuleType:
    """Import an optional package, or an ImportError naming the install command."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"RunLogger({argument}=...) needs the {module} package, which is not installed: {pip}"
        ) from e


# --- CSV / JSONL ----------------------------------------------------------------------


def label_columns(keys: Sequence[str], reserved: Sequence[str]) -> list[str]:
    """Column names of the label keys: `label/<key>` where a key equals another column."""
    taken = set(reserved)
    return [f"label/{k}" if k in taken else k for k in keys]


class FileWriter:
    """The CSV and JSONL tables under run_dir (see the module docstring).

    resume_from_update: rows with update > this are removed first (each file rewritten
    atomically); `last_update` and `max_env_steps` then describe what was kept."""

    TABLES = ("metrics", "metrics_mean", "eval", "eval_mean")

    def __init__(self, run_dir: Path, layout: Layout, resume_from_update: int | None = None):
        self.layout = layout
        self.tables = {stem: TableFile(run_dir, stem) for stem in self.TABLES}
        if resume_from_update is not None:
            for table in self.tables.values():
                table.truncate(resume_from_update)

    def existing(self) -> list[str]:
        """The names of the table files that already hold rows."""
        return [t.csv_path.name for t in self.tables.values() if t.exists()]

    def last_update(self, table: str) -> int:
        return self.tables[table].last_update

    def max_env_steps(self) -> int:
        return max(t.max_env_steps for t in self.tables.values())

    def write(self, rows: Rows) -> None:
        runs = self.layout.runs
        self._append(rows.table, list(runs[0]), [list(r.values()) for r in runs], rows, rows.runs)
        if self.layout.num_runs > 1:
            keys = self.layout.shared_label_keys()
            labels = [[g.labels[k] for k in keys] for g in self.layout.groups]
            self._append(f"{rows.table}_mean", keys, labels, rows, rows.groups)

    def _append(
        self,
        stem: str,
        label_keys: list[str],
        labels: list[list[Any]],
        rows: Rows,
        values: dict[str, np.ndarray],
    ) -> None:
        """Rows ordered by step, then by run (group): update, env_steps, labels, values."""
        names = list(values)
        columns = ["update", "env_steps", *names]
        py = [to_python(values[n]) for n in names]
        lines = [
            [update, steps, *labels[i], *(column[i][k] for column in py)]
            for k, (update, steps) in enumerate(zip(rows.updates, rows.env_steps, strict=True))
            for i in range(len(labels))
        ]
        header = ["update", "env_steps", *label_columns(label_keys, columns), *names]
        self.tables[stem].append(header, lines)
        self.tables[stem].last_update = rows.updates[-1]

    def close(self, exit_code: int = 0) -> None:
        for table in self.tables.values():
            table.close()


# --- TensorBoard ----------------------------------------------------------------------


class TensorBoardWriter:
    """Event files under tb_dir: one directory per run and per group mean (R > 1).

    purge_step: on resume, 1 + the last kept env step; TensorBoard discards the older
    events from that step on (tensorboardX's purge_step), the old files stay as they are.
    """

    def __init__(self, tb_dir: Path, layout: Layout, purge_step: int | None = None):
        tbx = import_optional("tensorboardX", "tensorboard", "pip install tensorboardX")
        self._summary = importlib.import_module("tensorboardX.proto.summary_pb2").Summary
        self.layout = layout
        self.runs: list[Any] = []  # one SummaryWriter per run
        self.groups: dict[int, Any] = {}  # group index -> SummaryWriter (groups of >1 run)
        dirs = [tb_dir] if layout.num_runs == 1 else [tb_dir / n for n in layout.names]
        for path in dirs:
            self.runs.append(self._open(tbx, path, purge_step))
        if layout.num_runs > 1:
            for j, group in enumerate(layout.groups):
                if len(group.runs) > 1:
                    self.groups[j] = self._open(tbx, tb_dir / f"{group.name}_mean", purge_step)

    @staticmethod
    def _open(tbx: ModuleType, path: Path, purge_step: int | None) -> Any:
        return tbx.SummaryWriter(str(path), purge_step=purge_step, max_queue=1000, flush_secs=30)

    @staticmethod
    def existing(tb_dir: Path) -> bool:
        """Whether tb_dir already holds event (or other) files."""
        return tb_dir.exists() and any(p.is_file() for p in tb_dir.rglob("*"))

    def write(self, rows: Rows) -> None:
        targets = [(w, rows.runs, r) for r, w in enumerate(self.runs)]
        targets += [(w, rows.groups, j) for j, w in self.groups.items()]
        for writer, values, row in targets:
            tagged = [(*tag_of(n), v[row].astype(np.float64).tolist()) for n, v in values.items()]
            for k, step in enumerate(rows.env_steps):
                # One event per step holding every value: 10x fewer events than add_scalar.
                items = [
                    self._summary.Value(tag=tag, simple_value=factor * column[k])
                    for tag, factor, column in tagged
                    if not math.isnan(column[k])
                ]
                if items:
                    writer.file_writer.add_summary(self._summary(value=items), global_step=step)
            writer.flush()

    def close(self, exit_code: int = 0) -> None:
        for writer in [*self.runs, *self.groups.values()]:
            writer.close()
        self.runs, self.groups = [], {}


# --- Weights & Biases -----------------------------------------------------------------


class WandbWriter:
    """One W&B run per logged run, so W&B's own grouping draws the bands over seeds.

    kwargs: `wandb.init` keyword arguments. With R > 1 runs, `name` and `group` (if
    given) prefix each run's name and group (`<name>-c0_s1`, `<group>-c0`), and `id` is
    refused (each run has its own). config: recorded in every run, with the run's labels
    under `run_labels`. resuming: continue the runs whose ids are in
    run_dir/wandb_run_ids.json (`resume="allow"`) unless kwargs name `id` or `resume`.
    """

    def __init__(
        self,
        run_dir: Path,
        layout: Layout,
        kwargs: Mapping[str, Any],
        config: Mapping[str, Any] | None = None,
        resuming: bool = False,
    ):
        wandb = import_optional(
            "wandb", "wandb", 'pip install wandb  (or pip install "purejaxppo[wandb]")'
        )
        if layout.num_runs > 1 and "id" in kwargs:
            raise ValueError(
                f"RunLogger: wandb['id']={kwargs['id']!r}: one id cannot name {layout.num_runs} "
                f"W&B runs (one per logged run); leave it out, the ids are kept in {WANDB_IDS_FILE}"
            )
        self.layout = layout
        self.runs: list[Any] = []
        self._ids_path = run_dir / WANDB_IDS_FILE
        ids = self._stored_ids() if resuming and not {"id", "resume"} & set(kwargs) else {}
        try:
            for r in range(layout.num_runs):
                self.runs.append(self._init(wandb, run_dir, r, kwargs, config, ids))
        except BaseException:
            self.close(exit_code=1)
            raise
        ids = {n: run.id for n, run in zip(layout.names, self.runs, strict=True)}
        atomic_write(self._ids_path, json.dumps(ids, indent=1) + "\n")

    def _stored_ids(self) -> dict[str, str]:
        if not self._ids_path.exists():
            return {}
        return json.loads(self._ids_path.read_text(encoding="utf-8"))

    def _init(
        self,
        wandb: ModuleType,
        run_dir: Path,
        r: int,
        kwargs: Mapping[str, Any],
        config: Mapping[str, Any] | None,
        ids: Mapping[str, str],
    ) -> Any:
        """wandb.init of run r: its name, its config group, its stored id on resume."""
        layout, name = self.layout, self.layout.names[r]
        init: dict[str, Any] = {"dir": str(run_dir), "reinit": "create_new", **kwargs}
        init["config"] = {**(config or {}), "run_labels": layout.runs[r]}
        if layout.num_runs > 1:
            group = next(g.name for g in layout.groups if r in g.runs)
            init["group"] = f"{kwargs['group']}-{group}" if kwargs.get("group") else group
            init["name"] = f"{kwargs['name']}-{name}" if kwargs.get("name") else name
        if name in ids:
            init.update(id=ids[name], resume="allow")
        run = wandb.init(**init)
        run.define_metric("env_steps")
        run.define_metric("*", step_metric="env_steps")
        return run

    def write(self, rows: Rows) -> None:
        tags = {n: tag_of(n) for n in rows.runs}
        for r, run in enumerate(self.runs):
            for k, (update, steps) in enumerate(zip(rows.updates, rows.env_steps, strict=True)):
                values = {tags[n][0]: tags[n][1] * float(v[r, k]) for n, v in rows.runs.items()}
                values = {tag: v for tag, v in values.items() if not math.isnan(v)}
                run.log({"update": update, "env_steps": steps, **values})

    def close(self, exit_code: int = 0) -> None:
        runs, self.runs = self.runs, []
        for run in runs:
            run.finish(exit_code=exit_code)
