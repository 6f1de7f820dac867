"""Host-side logs of PPO runs trained side by side: CSV and JSONL files, and optionally
TensorBoard and Weights & Biases. numpy only (no JAX), so it imports fast.

`RunLogger(run_dir, runs)` logs R runs (the configs of a sweep x seeds), each named by a
label dict such as `{"run": 3, "config": 1, "seed": 1, "lr": 0.0003}`. It writes:

    run_dir/
      metrics.csv, metrics.jsonl            one row per (update, run)
      metrics_mean.csv, metrics_mean.jsonl  R > 1: one row per (update, group)
      eval.csv, eval.jsonl                  one row per (evaluation, run)
      eval_mean.csv, eval_mean.jsonl        R > 1: one row per (evaluation, group)
      tb/                                   tensorboard=True: TensorBoard event files
      wandb/, wandb_run_id                  wandb=...: the W&B run files and the run's id

Columns: `update` (1-based count of updates completed), `env_steps` (env steps of that
run so far), the run labels, then the metrics in the order of the first `log_updates`
call (eval files: `eval/return`, `eval/return_std`, `eval/return_min`,
`eval/return_max`, `eval/length`). Rows are ordered by update, then by run (group) in
the order of `runs`. A label key equal to another column of the same file (a swept `lr`
next to the `lr` metric, which is the scheduled learning rate) is written as
`label/<key>`. A metric named `env_steps` is not repeated: it is the `env_steps` column.

Non-finite values: CSV writes `nan`, `inf`, `-inf` (read back by `float()`, pandas and
`read_csv`); JSONL writes `null` for NaN and for +-inf, so every line is valid JSON, and
`read_jsonl` reads `null` back as NaN.

Groups: runs sharing `runs[i][group_key]` (the seeds of one config), in order of first
appearance; if no run has `group_key`, all runs form one group. A `*_mean` row holds the
group's label values shared by all its runs, and for every other column the mean over
the group's runs, NaN ignored (NaN when all are NaN). Means of float32 columns are
rounded to float32.

Both files are flushed after every call, so a process killed between calls leaves only
complete lines; a line cut by a kill during a write is dropped on resume (and by the
readers).
"""

from __future__ import annotations

import csv
import dataclasses
import importlib
import io
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

import numpy as np

EVAL_COLUMNS = (
    "eval/return",
    "eval/return_std",
    "eval/return_min",
    "eval/return_max",
    "eval/length",
)
_TABLES = ("metrics", "metrics_mean", "eval", "eval_mean")
WANDB_ID_FILE = "wandb_run_id"


@dataclasses.dataclass(frozen=True)
class Group:
    """Runs sharing one value of the group key (the seeds of one config)."""

    name: str  # "c0" for group_key "config", "<key>=<value>" otherwise, "all" for one group
    value: Any  # the group key's value; None for the implicit single group
    runs: tuple[int, ...]  # indices into `runs`
    labels: dict[str, Any]  # label values shared by all its runs


def _check_runs(runs: Sequence[Mapping[str, Any]], where: str) -> list[dict[str, Any]]:
    """Validated copies of the run labels: same keys everywhere, JSON-like values."""
    if isinstance(runs, Mapping) or not isinstance(runs, Sequence) or len(runs) == 0:
        raise ValueError(f"{where}: runs={runs!r}: must be a non-empty list of label dicts")
    out = []
    for i, labels in enumerate(runs):
        if not isinstance(labels, Mapping):
            raise TypeError(f"{where}: runs[{i}]={labels!r}: must be a dict of labels")
        clean = {}
        for key, value in labels.items():
            if not isinstance(key, str) or not key:
                raise TypeError(f"{where}: runs[{i}] key {key!r}: label keys must be strings")
            clean[key] = _label_value(value, f"{where}: runs[{i}][{key!r}]")
        if i and clean.keys() != out[0].keys():
            raise ValueError(
                f"{where}: runs[{i}] has keys {list(clean)}, runs[0] has {list(out[0])}: "
                "every run must have the same label keys"
            )
        out.append(clean)
    return out


def _label_value(value: Any, where: str) -> Any:
    if isinstance(value, np.generic | np.ndarray):
        value = value.tolist()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_label_value(v, where) for v in value]
    raise TypeError(
        f"{where}={value!r}: a label must be None, a bool, int, float, str or a list of them"
    )


def group_runs(runs: Sequence[Mapping[str, Any]], group_key: str = "config") -> list[Group]:
    """The groups of `runs` by `runs[i][group_key]`, in order of first appearance."""
    runs = _check_runs(runs, "group_runs")
    if group_key not in runs[0]:  # every run has the same keys
        return [Group("all", None, tuple(range(len(runs))), _shared(runs, range(len(runs))))]
    order: dict[str, list[int]] = {}
    values: dict[str, Any] = {}
    for i, labels in enumerate(runs):
        key = json.dumps(labels[group_key])  # hashable and 1 != True, unlike the value
        order.setdefault(key, []).append(i)
        values.setdefault(key, labels[group_key])
    groups = []
    for key, members in order.items():
        value = values[key]
        text = _fmt(value)
        name = f"c{text}" if group_key == "config" else f"{group_key}={text}"
        groups.append(Group(_safe_name(name), value, tuple(members), _shared(runs, members)))
    return groups


def _shared(runs: list[dict[str, Any]], members: Sequence[int]) -> dict[str, Any]:
    first = runs[members[0]]
    return {k: v for k, v in first.items() if all(runs[i][k] == v for i in members)}


def run_names(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Short unique names of runs, for TensorBoard directories and W&B keys: `c0_s1` from
    config and seed labels, `s1` from a seed label alone, else `run<run label or index>`."""
    runs = _check_runs(runs, "run_names")
    names = []
    for i, labels in enumerate(runs):
        if "config" in labels and "seed" in labels:
            name = f"c{_fmt(labels['config'])}_s{_fmt(labels['seed'])}"
        elif "seed" in labels:
            name = f"s{_fmt(labels['seed'])}"
        else:
            name = f"run{_fmt(labels.get('run', i))}"
        names.append(_safe_name(name))
    if len(set(names)) < len(names):
        names = [f"{name}_r{i}" for i, name in enumerate(names)]
    return names


def group_legend_labels(groups: Sequence[Group], group_key: str = "config") -> list[str]:
    """Legend text per group: the shared labels whose values differ between groups (the
    swept hyperparameters, e.g. `lr=0.0003`), else `<group_key>=<value>`."""
    skip = {"run", "seed", group_key}
    keys = [k for k in groups[0].labels if k not in skip and all(k in g.labels for g in groups)]
    swept = [k for k in keys if len({json.dumps(g.labels[k]) for g in groups}) > 1]
    if not swept:
        return [g.name if g.value is None else f"{group_key}={_fmt(g.value)}" for g in groups]
    return [", ".join(f"{k}={_fmt(g.labels[k])}" for k in swept) for g in groups]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "x".join(_fmt(v) for v in value)
    return str(value)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]", "_", name)


# --- numeric helpers ----------------------------------------------------------------


def _out_dtype(dtype: np.dtype) -> type:
    """float32 results for float32/float16 inputs (short decimals), float64 otherwise."""
    return np.float32 if dtype.kind == "f" and dtype.itemsize <= 4 else np.float64


def _masked(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    mask = ~np.isnan(x)
    return x, mask, mask.sum(axis=axis)


def nanmean(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """Mean over `axis` ignoring NaN; NaN where every entry is NaN. No warnings."""
    x, mask, count = _masked(x, axis)
    with np.errstate(invalid="ignore"):
        total = np.where(mask, x, 0.0).sum(axis=axis)
        return np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)


def _nan_stats(x: np.ndarray, axis: int) -> dict[str, np.ndarray]:
    """mean, std (ddof 0), min and max over `axis`, NaN ignored, without warnings."""
    mean = nanmean(x, axis)
    x, mask, count = _masked(x, axis)
    with np.errstate(invalid="ignore"):
        dev = np.where(mask, x - np.expand_dims(mean, axis), 0.0)
        var = np.divide(
            (dev * dev).sum(axis=axis), count, out=np.full(mean.shape, np.nan), where=count > 0
        )
    empty = count == 0
    lo = np.where(empty, np.nan, np.where(mask, x, np.inf).min(axis=axis))
    hi = np.where(empty, np.nan, np.where(mask, x, -np.inf).max(axis=axis))
    return {"mean": mean, "std": np.sqrt(var), "min": lo, "max": hi}


def _to_python(x: np.ndarray) -> list:
    """Nested lists of Python numbers; float32 values become the float64 of their
    shortest decimal, so files show `0.3`, not `0.30000001192092896`."""
    if x.dtype.kind == "b":
        return x.astype(np.int64).tolist()
    if x.dtype.kind == "f" and x.dtype.itemsize < 8:
        return x.astype(str).astype(np.float64).tolist()
    return x.tolist()


def _json_value(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _csv_value(v: Any) -> Any:
    return json.dumps(v) if isinstance(v, list) else v


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


# --- files --------------------------------------------------------------------------


def _complete_text(path: Path) -> str:
    """The file's text up to its last newline (a line cut by a kill is dropped)."""
    text = path.read_text(encoding="utf-8")
    return text[: text.rfind("\n") + 1]


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _parse_cell(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_csv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a RunLogger CSV file as dicts; numbers parsed (`nan` to NaN), other text
    kept as strings. A last line without a newline (cut by a kill) is skipped."""
    reader = csv.reader(io.StringIO(_complete_text(Path(path)), newline=""))
    header = next(reader, None)
    if header is None:
        return []
    return [dict(zip(header, map(_parse_cell, row), strict=True)) for row in reader]


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Lines of a RunLogger JSONL file as dicts, `null` read as NaN. A last line without
    a newline (cut by a kill) is skipped."""
    rows = []
    for line in _complete_text(Path(path)).splitlines():
        if line.strip():
            rows.append({k: math.nan if v is None else v for k, v in json.loads(line).items()})
    return rows


def _truncate_csv(path: Path, max_update: int) -> tuple[list[str] | None, list[dict[str, str]]]:
    """Keep the header and the rows with update <= max_update (atomically); return the
    header and the kept rows."""
    if not path.exists():
        return None, []
    reader = csv.reader(io.StringIO(_complete_text(path), newline=""))
    header = next(reader, None)
    if header is None:
        _atomic_write(path, "")
        return None, []
    if "update" not in header:
        raise ValueError(f"RunLogger: {path} has no 'update' column (header {header})")
    kept = []
    for line, row in enumerate(reader, start=2):
        if len(row) != len(header):
            raise ValueError(
                f"RunLogger: {path} line {line} has {len(row)} fields, not {len(header)}"
            )
        record = dict(zip(header, row, strict=True))
        if int(record["update"]) <= max_update:
            kept.append(record)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows([r[h] for h in header] for r in kept)
    _atomic_write(path, out.getvalue())
    return header, kept


def _truncate_jsonl(path: Path, max_update: int) -> None:
    if not path.exists():
        return
    kept = []
    for line_no, line in enumerate(_complete_text(path).splitlines(keepends=True), start=1):
        if not line.strip():
            continue
        try:
            update = json.loads(line)["update"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"RunLogger: {path} line {line_no} is not a logged row: {e}") from e
        if update <= max_update:
            kept.append(line)
    _atomic_write(path, "".join(kept))


class _Table:
    """One CSV + JSONL pair, appended to with a fixed set of columns."""

    def __init__(self, run_dir: Path, stem: str):
        self.csv_path = run_dir / f"{stem}.csv"
        self.jsonl_path = run_dir / f"{stem}.jsonl"
        self.header: list[str] | None = None  # the CSV file's header, once known
        self.last_update = -1
        self.max_env_steps = -1
        self._csv: io.TextIOWrapper | None = None
        self._jsonl: io.TextIOWrapper | None = None

    def exists(self) -> bool:
        return any(p.exists() and p.stat().st_size > 0 for p in (self.csv_path, self.jsonl_path))

    def truncate(self, max_update: int) -> None:
        self.header, kept = _truncate_csv(self.csv_path, max_update)
        _truncate_jsonl(self.jsonl_path, max_update)
        for row in kept:
            self.last_update = max(self.last_update, int(row["update"]))
            self.max_env_steps = max(self.max_env_steps, int(float(row["env_steps"])))

    def append(self, columns: list[str], rows: list[list[Any]]) -> None:
        if self._csv is None:
            if self.header is not None and self.header != columns:
                raise ValueError(
                    f"RunLogger: {self.csv_path} has columns {self.header}, this run logs "
                    f"{columns}: resume into a run_dir written with the same metrics and labels"
                )
            new = not self.csv_path.exists() or self.csv_path.stat().st_size == 0
            self._csv = open(self.csv_path, "a", encoding="utf-8", newline="")
            self._jsonl = open(self.jsonl_path, "a", encoding="utf-8")
            if new:
                csv.writer(self._csv).writerow(columns)
            self.header = columns
        text = io.StringIO()
        csv.writer(text).writerows([_csv_value(v) for v in row] for row in rows)
        lines = "".join(
            json.dumps(dict(zip(columns, map(_json_value, row), strict=True)), allow_nan=False)
            + "\n"
            for row in rows
        )
        # One write per file per call, so a kill leaves at most one cut line.
        self._csv.write(text.getvalue())
        self._jsonl.write(lines)
        self._csv.flush()
        self._jsonl.flush()

    def close(self) -> None:
        for f in (self._csv, self._jsonl):
            if f is not None:
                f.close()
        self._csv = self._jsonl = None


def _label_columns(keys: Sequence[str], reserved: Sequence[str]) -> list[str]:
    taken = set(reserved)
    return [f"label/{k}" if k in taken else k for k in keys]


def _import_optional(module: str, argument: str, pip: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"RunLogger({argument}=...) needs the {module} package, which is not installed: {pip}"
        ) from e


# --- the logger ---------------------------------------------------------------------


class RunLogger:
    """Per-update metrics and evaluations of R runs to CSV/JSONL files under `run_dir`
    (see the module docstring for the layout), and optionally to TensorBoard and W&B.

    runs: one label dict per run, in the order of the runs axis of the logged arrays.
    tensorboard: also write TensorBoard event files (needs tensorboardX) under
        `run_dir/tb`: one run -> `tb/` itself; several runs -> `tb/<run name>` per run
        (`run_names`, e.g. `tb/c0_s1`) and `tb/<group name>_mean` per group of more than
        one run (e.g. `tb/c0_mean`), so TensorBoard overlays them. Tags are the metric
        names and `eval/...`; the step is env_steps; NaN values are skipped.
    wandb: True or a dict of `wandb.init` keyword arguments (e.g. `{"project": "ppo",
        "mode": "offline"}`; WANDB_MODE=offline works too). One W&B run holds all R runs,
        with `env_steps` as the x-axis. One run: the metrics under their names. Several
        runs: the group means under the metric names (one group) or as
        `<metric>/<group name>` (several groups), and the values of each run for the
        metrics in `wandb_run_metrics` as `runs/<metric>/<run name>`. NaN values skipped.
    config: the configuration recorded in W&B (`wandb.init(config=...)`).
    resume_from_update: continue a run_dir after a crash from a checkpoint at this
        update: rows with update > resume_from_update are removed first (each file
        rewritten atomically) and logging continues after them; 0 starts over. Without
        it, a run_dir that already holds logs is an error. TensorBoard: new event files
        are added next to the old ones, starting with a restart marker at step 1 + the
        last kept env_steps (tensorboardX's purge_step), from which TensorBoard's
        loader discards the old events (that of `--load_fast=false` at least; the old
        files are not edited). W&B: the run whose id is stored in
        `run_dir/wandb_run_id` is continued (`resume="allow"`) unless the wandb dict names
        `id` or `resume`; rows it already received after the checkpoint stay in W&B.
    group_key: the label that groups runs for the `*_mean` files (the seeds of a config).
    wandb_run_metrics: the metrics also sent to W&B per run when there are several runs.
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
        wandb_run_metrics: Sequence[str] = ("episode_return", "eval/return"),
    ):
        self.runs = _check_runs(runs, "RunLogger")
        if resume_from_update is not None:
            resume_from_update = _nonnegative_int(
                resume_from_update, "resume_from_update", "RunLogger"
            )
        self.run_dir = Path(run_dir)
        self.group_key = group_key
        self.groups = group_runs(self.runs, group_key)
        self.run_names = run_names(self.runs)
        self.num_runs = len(self.runs)
        self.resume_from_update = resume_from_update
        self.wandb_run_metrics = tuple(wandb_run_metrics)
        self._closed = False
        self._metric_names: list[str] | None = None
        self._tables = {stem: _Table(self.run_dir, stem) for stem in _TABLES}
        self._tb: dict[str, Any] = {}
        self._tb_summary: type | None = None
        self._wandb_run: Any = None

        if not isinstance(tensorboard, bool):
            raise TypeError(f"RunLogger: tensorboard={tensorboard!r}: must be True or False")
        if not isinstance(wandb, bool | Mapping):
            raise TypeError(f"RunLogger: wandb={wandb!r}: must be a bool or a dict of kwargs")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tb_dir = self.run_dir / "tb"
        if resume_from_update is None:
            existing = [t.csv_path.name for t in self._tables.values() if t.exists()]
            if tensorboard and tb_dir.exists() and any(p.is_file() for p in tb_dir.rglob("*")):
                existing.append("tb/")
            if existing:
                raise FileExistsError(
                    f"RunLogger: run_dir={str(self.run_dir)!r} already holds logs ({existing}): "
                    "pass resume_from_update=<checkpoint update> to continue them, "
                    "resume_from_update=0 to start over, or use a new run_dir"
                )
        else:
            for table in self._tables.values():
                table.truncate(resume_from_update)
        try:
            if tensorboard:
                self._open_tensorboard(tb_dir)
            if wandb is not False:
                self._open_wandb({} if wandb is True else dict(wandb), config)
        except BaseException:
            self.close()
            raise

    # -- setup ------------------------------------------------------------------------

    def _open_tensorboard(self, tb_dir: Path) -> None:
        tbx = _import_optional("tensorboardX", "tensorboard", "pip install tensorboardX")
        summary_pb2 = importlib.import_module("tensorboardX.proto.summary_pb2")
        self._tb_summary = summary_pb2.Summary
        purge = None
        if self.resume_from_update is not None:
            steps = max(self._tables["metrics"].max_env_steps, self._tables["eval"].max_env_steps)
            purge = steps + 1 if steps >= 0 else 0
        dirs = {"": tb_dir} if self.num_runs == 1 else {}
        if self.num_runs > 1:
            dirs.update({name: tb_dir / name for name in self.run_names})
            dirs.update({f"{g.name}_mean": tb_dir / f"{g.name}_mean" for g in self._tb_groups()})
        for key, path in dirs.items():
            self._tb[key] = tbx.SummaryWriter(
                str(path), purge_step=purge, max_queue=1000, flush_secs=30
            )

    def _tb_groups(self) -> list[Group]:
        return [g for g in self.groups if len(g.runs) > 1]

    def _open_wandb(self, kwargs: dict[str, Any], config: Mapping[str, Any] | None) -> None:
        wandb = _import_optional(
            "wandb", "wandb", 'pip install wandb  (or pip install "purejaxppo[wandb]")'
        )
        id_file = self.run_dir / WANDB_ID_FILE
        init = {"dir": str(self.run_dir), "config": dict(config) if config else None, **kwargs}
        resuming = self.resume_from_update is not None
        if resuming and id_file.exists() and "id" not in kwargs and "resume" not in kwargs:
            init.update(id=id_file.read_text(encoding="utf-8").strip(), resume="allow")
        run = wandb.init(**init)
        self._wandb_run = run
        run.define_metric("env_steps")
        run.define_metric("*", step_metric="env_steps")
        _atomic_write(id_file, run.id + "\n")

    # -- logging ----------------------------------------------------------------------

    def log_updates(
        self,
        first_update: int,
        env_steps_per_update: int,
        metrics: Mapping[str, np.ndarray],
    ) -> None:
        """Append updates first_update .. first_update + K - 1 of every run.

        metrics: name -> [R, K] array (or [..., K] with the R runs on the leading axes
            in C order, e.g. [configs, seeds, K]); NaN where undefined (no episode
            ended). The names are fixed by the first call.
        first_update: 1-based number of the first of these updates; must follow the
            updates already logged.
        env_steps_per_update: env steps of one run per update (`update * this` is the
            `env_steps` column).
        """
        where = "RunLogger.log_updates"
        self._check_open(where)
        first = _nonnegative_int(first_update, "first_update", where, minimum=1)
        per_update = _nonnegative_int(env_steps_per_update, "env_steps_per_update", where)
        metrics = self._check_metrics(metrics, where)
        table = self._tables["metrics"]
        if first <= table.last_update:
            raise ValueError(
                f"{where}: first_update={first}: updates up to {table.last_update} are already "
                "logged; each update is logged once (pass resume_from_update to rewind)"
            )
        num = next(iter(metrics.values())).shape[1]
        updates = range(first, first + num)
        names = self._metric_names
        columns = ["update", "env_steps"]
        labels = _label_columns(list(self.runs[0]), [*columns, *names])
        values = {n: _to_python(metrics[n]) for n in names}
        rows = [
            [u, u * per_update, *self.runs[r].values(), *(values[n][r][k] for n in names)]
            for k, u in enumerate(updates)
            for r in range(self.num_runs)
        ]
        table.append([*columns, *labels, *names], rows)
        table.last_update = updates[-1]

        means = {}
        if self.num_runs > 1:
            means = {n: self._group_means(metrics[n]) for n in names}
            keys = list(self._shared_label_keys())
            mean_labels = _label_columns(keys, [*columns, *names])
            mean_values = {n: _to_python(means[n]) for n in names}
            rows = [
                [u, u * per_update, *(g.labels[key] for key in keys)]
                + [mean_values[n][j][k] for n in names]
                for k, u in enumerate(updates)
                for j, g in enumerate(self.groups)
            ]
            self._tables["metrics_mean"].append([*columns, *mean_labels, *names], rows)

        steps = [u * per_update for u in updates]
        self._to_tensorboard(metrics, means, steps)
        self._to_wandb(metrics, means, updates, steps)

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
        table = self._tables["eval"]
        if update <= table.last_update:
            raise ValueError(
                f"{where}: update={update}: an evaluation at update {table.last_update} is "
                "already logged; evaluations must be logged at increasing updates"
            )
        stats = _nan_stats(returns, axis=1)
        dtype = _out_dtype(returns.dtype)
        per_run = {
            "eval/return": stats["mean"].astype(dtype),
            "eval/return_std": stats["std"].astype(dtype),
            "eval/return_min": stats["min"].astype(dtype),
            "eval/return_max": stats["max"].astype(dtype),
            "eval/length": nanmean(lengths, axis=1).astype(_out_dtype(lengths.dtype)),
        }
        columns = ["update", "env_steps"]
        labels = _label_columns(list(self.runs[0]), [*columns, *EVAL_COLUMNS])
        values = {n: _to_python(per_run[n]) for n in EVAL_COLUMNS}
        rows = [
            [update, env_steps, *self.runs[r].values(), *(values[n][r] for n in EVAL_COLUMNS)]
            for r in range(self.num_runs)
        ]
        table.append([*columns, *labels, *EVAL_COLUMNS], rows)
        table.last_update = update

        # As [R, 1] "updates" so the TensorBoard and W&B paths are shared with metrics.
        per_run = {n: v[:, None] for n, v in per_run.items()}
        means = {}
        if self.num_runs > 1:
            means = {n: self._group_means(per_run[n]) for n in EVAL_COLUMNS}
            keys = list(self._shared_label_keys())
            mean_labels = _label_columns(keys, [*columns, *EVAL_COLUMNS])
            mean_values = {n: _to_python(means[n]) for n in EVAL_COLUMNS}
            rows = [
                [update, env_steps, *(g.labels[key] for key in keys)]
                + [mean_values[n][j][0] for n in EVAL_COLUMNS]
                for j, g in enumerate(self.groups)
            ]
            self._tables["eval_mean"].append([*columns, *mean_labels, *EVAL_COLUMNS], rows)
        self._to_tensorboard(per_run, means, [env_steps])
        self._to_wandb(per_run, means, [update], [env_steps])

    # -- helpers ----------------------------------------------------------------------

    def _check_open(self, where: str) -> None:
        if self._closed:
            raise RuntimeError(f"{where}: the RunLogger for {str(self.run_dir)!r} is closed")

    def _check_metrics(self, metrics: Mapping[str, Any], where: str) -> dict[str, np.ndarray]:
        if not isinstance(metrics, Mapping) or not metrics:
            raise ValueError(f"{where}: metrics={metrics!r}: must be a non-empty dict of arrays")
        out = {}
        for name, value in metrics.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"{where}: metric name {name!r}: must be a non-empty string")
            if name == "update":
                raise ValueError(f"{where}: metric name 'update' is reserved for the column")
            if name != "env_steps":  # the env_steps column already holds it
                out[name] = _runs_axis(value, self.num_runs, f"metrics[{name!r}]", where)
        if not out:
            raise ValueError(f"{where}: metrics has only 'env_steps': nothing to log")
        lengths = {name: v.shape[1] for name, v in out.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(
                f"{where}: metrics have different numbers of updates {lengths}: must be equal"
            )
        if self._metric_names is None:
            self._metric_names = list(out)
        elif set(out) != set(self._metric_names):
            raise ValueError(
                f"{where}: metrics {sorted(out)} differ from the first call's "
                f"{sorted(self._metric_names)}: every call must log the same metrics"
            )
        return out

    def _group_means(self, x: np.ndarray) -> np.ndarray:
        """[R, K] -> [G, K]: nanmean over each group's runs."""
        out = np.stack([nanmean(x[list(g.runs)], axis=0) for g in self.groups])
        return out.astype(_out_dtype(x.dtype))

    def _shared_label_keys(self) -> list[str]:
        """Label keys shared within every group (e.g. config and the swept values)."""
        return [k for k in self.runs[0] if all(k in g.labels for g in self.groups)]

    def _to_tensorboard(
        self, per_run: dict[str, np.ndarray], means: dict[str, np.ndarray], steps: list[int]
    ) -> None:
        if not self._tb:
            return
        writers: list[tuple[Any, dict[str, np.ndarray], int]] = []
        if self.num_runs == 1:
            writers.append((self._tb[""], per_run, 0))
        else:
            writers += [(self._tb[n], per_run, r) for r, n in enumerate(self.run_names)]
            writers += [
                (self._tb[f"{g.name}_mean"], means, j)
                for j, g in enumerate(self.groups)
                if len(g.runs) > 1
            ]
        Summary = self._tb_summary
        for writer, values, row in writers:
            file_writer = writer.file_writer
            columns = [(name, v[row].astype(np.float64).tolist()) for name, v in values.items()]
            for k, step in enumerate(steps):
                # One event per step holding every metric: 10x fewer events than add_scalar.
                items = [
                    Summary.Value(tag=name, simple_value=column[k])
                    for name, column in columns
                    if not math.isnan(column[k])
                ]
                if items:
                    file_writer.add_summary(Summary(value=items), global_step=step)
            writer.flush()

    def _to_wandb(
        self,
        per_run: dict[str, np.ndarray],
        means: dict[str, np.ndarray],
        updates: Sequence[int],
        steps: list[int],
    ) -> None:
        if self._wandb_run is None:
            return
        for k, (update, step) in enumerate(zip(updates, steps, strict=True)):
            row: dict[str, Any] = {}
            if self.num_runs == 1:
                row.update({n: v[0, k] for n, v in per_run.items()})
            else:
                for n, v in means.items():
                    for j, g in enumerate(self.groups):
                        row[n if len(self.groups) == 1 else f"{n}/{g.name}"] = v[j, k]
                for n in self.wandb_run_metrics:
                    if n in per_run:
                        for r, name in enumerate(self.run_names):
                            row[f"runs/{n}/{name}"] = per_run[n][r, k]
            row = {key: float(v) for key, v in row.items() if not math.isnan(v)}
            self._wandb_run.log({"update": update, "env_steps": step, **row})

    # -- closing ----------------------------------------------------------------------

    def close(self, exit_code: int = 0) -> None:
        """Close the files and writers and finish the W&B run (with `exit_code`).
        Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        for table in self._tables.values():
            table.close()
        for writer in self._tb.values():
            writer.close()
        self._tb = {}
        if self._wandb_run is not None:
            run, self._wandb_run = self._wandb_run, None
            run.finish(exit_code=exit_code)

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(exit_code=0 if exc_type is None else 1)
