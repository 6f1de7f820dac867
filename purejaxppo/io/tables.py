"""Tables of logged rows as files: one CSV and one JSONL file per table, appended with a
fixed set of columns, truncated on resume, read back by `read_csv` and `read_jsonl`; and
the NaN-aware numeric helpers the logger and plots share. numpy only (no JAX).

Non-finite values: CSV writes `nan`, `inf`, `-inf` (read back by `float()`, pandas and
`read_csv`); JSONL writes `null` for NaN and for +-inf, so every line is valid JSON, and
`read_jsonl` reads `null` back as NaN. Each append is one write per file, flushed, so a
process killed between calls leaves only complete lines; a line cut by a kill during a
write is dropped on resume (`TableFile.truncate`) and by the readers.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

# --- numeric helpers ----------------------------------------------------------------


def out_dtype(dtype: np.dtype) -> type:
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


def nan_stats(x: np.ndarray, axis: int) -> dict[str, np.ndarray]:
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


def to_python(x: np.ndarray) -> list:
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


# --- files --------------------------------------------------------------------------


def _complete_text(path: Path) -> str:
    """The file's text up to its last newline (a line cut by a kill is dropped)."""
    text = path.read_text(encoding="utf-8")
    return text[: text.rfind("\n") + 1]


def atomic_write(path: Path, text: str | bytes) -> None:
    """Replace `path` by `text` (str as UTF-8, or bytes), written to a temporary file,
    fsynced, then renamed."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:  # bytes as given: no newline translation
        f.write(text.encode("utf-8") if isinstance(text, str) else text)
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
        atomic_write(path, "")
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
    atomic_write(path, out.getvalue())
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
    atomic_write(path, "".join(kept))


class TableFile:
    """One table as a CSV + JSONL pair (`<stem>.csv`, `<stem>.jsonl`), appended to with
    a fixed set of columns: the header of an existing file, else the first append's."""

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
