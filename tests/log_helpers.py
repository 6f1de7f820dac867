"""Shared helpers of the logging tests (test_loggers, test_writers, test_runner): fake
metrics of a sweep, float32 comparisons, and readers of TensorBoard event files and W&B
offline run files."""

from __future__ import annotations

import math
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest


def sweep_runs(num_configs: int = 3, num_seeds: int = 2) -> list[dict]:
    lrs = [3e-4, 1e-3, 3e-3, 1e-2][:num_configs]
    return [
        {"run": c * num_seeds + s, "config": c, "seed": s, "lr": lrs[c]}
        for c in range(num_configs)
        for s in range(num_seeds)
    ]


def fake_metrics(rng: np.random.Generator, num_runs: int, num: int, first: int) -> dict:
    """[R, K] metrics like train's: float32 with NaN returns, ints, bools, env_steps."""
    ret = rng.normal(100, 30, (num_runs, num)).astype(np.float32)
    ret[rng.random(ret.shape) < 0.3] = np.nan
    updates = np.arange(first, first + num)
    return {
        "episode_return": ret,
        "policy_loss": rng.normal(size=(num_runs, num)).astype(np.float32),
        "lr": np.full((num_runs, num), 3e-4, np.float32),
        "updates_done": rng.integers(0, 8, (num_runs, num)).astype(np.int32),
        "early_stopped": rng.random((num_runs, num)) < 0.5,
        "env_steps": np.broadcast_to(updates * 64, (num_runs, num)).astype(np.int32),
    }


def assert_same(got, want) -> None:
    """Equal as float32 values (files hold the shortest decimal of each float32)."""
    np.testing.assert_array_equal(
        np.asarray(got, dtype=np.float64).astype(np.float32), np.asarray(want, np.float32)
    )


def assert_rows_equal(got: list[dict], want: list[dict]) -> None:
    """Same rows, same columns in the same order, equal values (NaN equal to NaN)."""
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert list(a) == list(b)
        for key in a:
            same_nan = isinstance(a[key], float) and math.isnan(a[key]) and math.isnan(b[key])
            assert same_nan or a[key] == b[key], (key, a, b)


def quiet_nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.asarray(x, np.float64), axis=axis)


def read_events(logdir: Path) -> list:
    """Every Event in the logdir's event files (TFRecord framing and CRCs checked)."""
    event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2")
    from tensorboardX.crc32c import crc32c

    def masked(data: bytes) -> int:
        crc = crc32c(data)
        return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF

    events = []
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            header = data[pos : pos + 8]
            (length,) = struct.unpack("<Q", header)
            assert struct.unpack("<I", data[pos + 8 : pos + 12])[0] == masked(header)
            body = data[pos + 12 : pos + 12 + length]
            assert struct.unpack("<I", data[pos + 12 + length : pos + 16 + length])[0] == masked(
                body
            )
            events.append(event_pb2.Event.FromString(body))
            pos += 16 + length
    return events


def scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = {}
    for event in read_events(logdir):
        for value in event.summary.value:
            out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


def wandb_records(path: Path) -> list:
    """The records of a W&B offline run file (`run-<id>.wandb`): LevelDB-log framing
    (32 KiB blocks of records split as full/first/middle/last) after a 7-byte header."""
    pb = pytest.importorskip("wandb.proto.wandb_internal_pb2")
    data, pos, block = path.read_bytes(), 7, 32768
    assert data[:4] == b":W&B", data[:7]
    records, part = [], b""
    while pos + 7 <= len(data):
        left = block - pos % block
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if left < 7 or (kind == 0 and length == 0):  # block padding
            pos += left
            continue
        part += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            records.append(pb.Record.FromString(part))
            part = b""
    return records


def wandb_offline_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """W&B offline, quiet, with its config, cache and data under tmp_path."""
    pytest.importorskip("wandb")
    for key, value in {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_CONSOLE": "off",
        "WANDB_DISABLE_GIT": "true",
        "WANDB_DISABLE_CODE": "true",
        "WANDB_CONFIG_DIR": str(tmp_path / "wandb_config"),
        "WANDB_CACHE_DIR": str(tmp_path / "wandb_cache"),
        "WANDB_DATA_DIR": str(tmp_path / "wandb_data"),
    }.items():
        monkeypatch.setenv(key, value)
