"""RunLogger files (CSV, JSONL, means, eval, resume), TensorBoard and W&B outputs, and the
learning-curve plot, on fake numpy metrics (no JAX)."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import re
import signal
import struct
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from purejaxppo.io.loggers import (
    EVAL_COLUMNS,
    RunLogger,
    group_legend_labels,
    group_runs,
    read_csv,
    read_jsonl,
    run_names,
)
from purejaxppo.io.plots import plot_learning_curves, smooth

TABLES = ("metrics", "metrics_mean", "eval", "eval_mean")


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


# -- CSV / JSONL -----------------------------------------------------------------------


def test_one_run_files_hold_every_metric(tmp_path):
    rng = np.random.default_rng(0)
    metrics = fake_metrics(rng, 1, 5, first=1)
    metrics["policy_loss"][0, 1] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with RunLogger(tmp_path, [{"run": 0, "seed": 0}]) as log:
            log.log_updates(1, 64, {k: v[0] for k, v in metrics.items()})  # [K] for one run
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv", "metrics.jsonl"]

    names = ["episode_return", "policy_loss", "lr", "updates_done", "early_stopped"]
    header = next(csv.reader((tmp_path / "metrics.csv").read_text().splitlines()))
    assert header == ["update", "env_steps", "run", "seed", *names]
    loss = metrics["policy_loss"]
    in_json = dict(metrics, policy_loss=np.where(np.isinf(loss), np.nan, loss))  # inf -> null
    for rows, want in (
        (read_csv(tmp_path / "metrics.csv"), metrics),
        (read_jsonl(tmp_path / "metrics.jsonl"), in_json),
    ):
        assert [r["update"] for r in rows] == [1, 2, 3, 4, 5]
        assert [r["env_steps"] for r in rows] == [64, 128, 192, 256, 320]
        assert all(r["run"] == 0 and r["seed"] == 0 for r in rows)
        for name in names:
            assert_same([r[name] for r in rows], want[name][0])

    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    raw = [json.loads(line) for line in lines]  # strict JSON: no NaN/Infinity tokens
    assert "NaN" not in lines[0] and "Infinity" not in "".join(lines)
    assert raw[1]["policy_loss"] is None  # inf -> null
    assert read_csv(tmp_path / "metrics.csv")[1]["policy_loss"] == math.inf
    assert raw[0]["lr"] == 0.0003  # the float32's shortest decimal, not 0.000300000014...
    assert isinstance(raw[0]["updates_done"], int) and raw[0]["early_stopped"] in (0, 1)


def test_csv_reads_back_with_pandas(tmp_path):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(1)
    metrics = fake_metrics(rng, 4, 3, first=1)
    with RunLogger(tmp_path, sweep_runs(2, 2)) as log:
        log.log_updates(1, 64, metrics)
    frame = pd.read_csv(tmp_path / "metrics.csv")
    assert_same(frame["episode_return"].to_numpy().reshape(3, 4).T, metrics["episode_return"])
    frame = pd.read_json(tmp_path / "metrics.jsonl", lines=True)
    assert_same(frame["episode_return"].to_numpy().reshape(3, 4).T, metrics["episode_return"])


def test_sweep_rows_and_group_means(tmp_path):
    rng = np.random.default_rng(2)
    runs = sweep_runs(3, 2)
    chunks = [fake_metrics(rng, 6, 4, first=1), fake_metrics(rng, 6, 4, first=5)]
    chunks[0]["episode_return"][0:2, 0] = np.nan  # config 0: no episode ended at update 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with RunLogger(tmp_path, runs) as log:
            log.log_updates(1, 64, chunks[0])
            log.log_updates(5, 64, chunks[1])
    full = {k: np.concatenate([c[k] for c in chunks], axis=1) for k in chunks[0]}

    rows = read_jsonl(tmp_path / "metrics.jsonl")
    assert len(rows) == 6 * 8
    assert list(rows[0]) == [
        "update",
        "env_steps",
        "run",
        "config",
        "seed",
        "label/lr",
        "episode_return",
        "policy_loss",
        "lr",
        "updates_done",
        "early_stopped",
    ]
    assert [(r["update"], r["run"]) for r in rows] == [
        (u, r) for u in range(1, 9) for r in range(6)
    ]
    assert [r["label/lr"] for r in rows[:6]] == [run["lr"] for run in runs]
    for name in ("episode_return", "policy_loss", "lr", "updates_done", "early_stopped"):
        got = np.array([r[name] for r in rows]).reshape(8, 6).T
        assert_same(got, full[name])
    assert_rows_equal(read_csv(tmp_path / "metrics.csv"), rows)

    means = read_jsonl(tmp_path / "metrics_mean.jsonl")
    assert len(means) == 3 * 8
    assert list(means[0])[:4] == ["update", "env_steps", "config", "label/lr"]
    assert [(m["update"], m["config"]) for m in means] == [
        (u, c) for u in range(1, 9) for c in range(3)
    ]
    assert [m["label/lr"] for m in means[:3]] == [3e-4, 1e-3, 3e-3]
    for name in ("episode_return", "policy_loss", "updates_done", "early_stopped"):
        got = np.array([m[name] for m in means]).reshape(8, 3).T
        want = quiet_nanmean(full[name].reshape(3, 2, 8), axis=1)
        np.testing.assert_allclose(got, want, rtol=1e-6)
    assert math.isnan(means[0]["episode_return"])  # all-NaN group -> NaN (null)
    assert_rows_equal(read_csv(tmp_path / "metrics_mean.csv"), means)


def test_leading_run_axes_are_flattened_in_c_order(tmp_path):
    rng = np.random.default_rng(3)
    flat = fake_metrics(rng, 6, 3, first=1)
    with RunLogger(tmp_path / "a", sweep_runs(3, 2)) as log:
        log.log_updates(1, 64, flat)
    with RunLogger(tmp_path / "b", sweep_runs(3, 2)) as log:
        log.log_updates(1, 64, {k: v.reshape(3, 2, 3) for k, v in flat.items()})
    for stem in ("metrics.csv", "metrics_mean.jsonl"):
        assert (tmp_path / "a" / stem).read_text() == (tmp_path / "b" / stem).read_text()


def test_eval_rows_and_means(tmp_path):
    rng = np.random.default_rng(4)
    returns = rng.normal(50, 10, (4, 5)).astype(np.float32)
    lengths = rng.integers(10, 200, (4, 5)).astype(np.int32)
    with RunLogger(tmp_path, sweep_runs(2, 2)) as log:
        log.log_eval(0, 0, returns, lengths)
        log.log_eval(10, 640, returns + 1, lengths)
    rows = read_csv(tmp_path / "eval.csv")
    assert list(rows[0]) == ["update", "env_steps", "run", "config", "seed", "lr", *EVAL_COLUMNS]
    assert [(r["update"], r["env_steps"], r["run"]) for r in rows] == [
        (u, s, r) for u, s in ((0, 0), (10, 640)) for r in range(4)
    ]
    first = rows[:4]
    want = returns.astype(np.float64).mean(axis=1)  # computed in float64, then rounded
    assert_same([r["eval/return"] for r in first], want)
    np.testing.assert_allclose([r["eval/return_std"] for r in first], returns.std(axis=1), 1e-5)
    assert_same([r["eval/return_min"] for r in first], returns.min(axis=1))
    assert_same([r["eval/return_max"] for r in first], returns.max(axis=1))
    np.testing.assert_allclose([r["eval/length"] for r in first], lengths.mean(axis=1))
    assert_rows_equal(read_jsonl(tmp_path / "eval.jsonl"), rows)

    means = read_jsonl(tmp_path / "eval_mean.jsonl")
    assert [(m["update"], m["config"], m["lr"]) for m in means] == [
        (u, c, lr) for u in (0, 10) for c, lr in ((0, 3e-4), (1, 1e-3))
    ]
    np.testing.assert_allclose(
        [m["eval/return"] for m in means[:2]], returns.mean(axis=1).reshape(2, 2).mean(1), 1e-6
    )
    with RunLogger(tmp_path, sweep_runs(2, 2), resume_from_update=10) as log:
        with pytest.raises(ValueError, match="increasing updates"):
            log.log_eval(10, 640, returns, lengths)


def test_eval_nan_episodes_are_ignored(tmp_path):
    returns = np.array([[1.0, np.nan, 3.0], [np.nan, np.nan, np.nan]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with RunLogger(tmp_path, [{"seed": 0}, {"seed": 1}]) as log:
            log.log_eval(1, 8, returns, np.ones((2, 3)))
    rows = read_jsonl(tmp_path / "eval.jsonl")
    assert [rows[0][c] for c in EVAL_COLUMNS] == [2.0, 1.0, 1.0, 3.0, 1.0]
    assert all(math.isnan(rows[1][c]) for c in EVAL_COLUMNS[:4])
    means = read_jsonl(tmp_path / "eval_mean.jsonl")  # no group key: one group of both runs
    assert len(means) == 1 and means[0]["eval/return"] == 2.0
    assert list(means[0])[:2] == ["update", "env_steps"]


# -- resume ----------------------------------------------------------------------------


def write_three_chunks(run_dir: Path, rng: np.random.Generator, **kwargs) -> RunLogger:
    log = RunLogger(run_dir, sweep_runs(2, 2), **kwargs)
    for first in (1, 5, 9):
        log.log_updates(first, 64, fake_metrics(rng, 4, 4, first))
        log.log_eval(first + 3, (first + 3) * 64, rng.normal(size=(4, 3)), np.ones((4, 3)))
    return log


def test_resume_truncates_to_the_checkpoint_and_appends(tmp_path):
    rng = np.random.default_rng(5)
    write_three_chunks(tmp_path, rng).close()
    before = {stem: read_jsonl(tmp_path / f"{stem}.jsonl") for stem in TABLES}
    # A kill in the middle of a write leaves a cut last line.
    with open(tmp_path / "metrics.csv", "a") as f:
        f.write("13,832,0,0,0,0.0")
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"update": 13, "env_st')

    with pytest.raises(FileExistsError, match="resume_from_update"):
        RunLogger(tmp_path, sweep_runs(2, 2))

    log = RunLogger(tmp_path, sweep_runs(2, 2), resume_from_update=6)
    for stem in TABLES:
        for rows in (read_csv(tmp_path / f"{stem}.csv"), read_jsonl(tmp_path / f"{stem}.jsonl")):
            want = [r for r in before[stem] if r["update"] <= 6]
            assert_rows_equal(rows, want)
    assert {r["update"] for r in read_jsonl(tmp_path / "eval.jsonl")} == {4}
    assert not list(tmp_path.glob("*.tmp"))

    with pytest.raises(ValueError, match="already logged"):
        log.log_updates(6, 64, fake_metrics(rng, 4, 2, 6))
    new = fake_metrics(rng, 4, 2, 7)
    log.log_updates(7, 64, new)
    log.log_eval(8, 512, np.zeros((4, 3)), np.ones((4, 3)))
    log.close()
    rows = read_csv(tmp_path / "metrics.csv")
    assert [r["update"] for r in rows] == [u for u in range(1, 9) for _ in range(4)]
    assert_same([r["episode_return"] for r in rows[-8:]], new["episode_return"].T.ravel())
    assert (tmp_path / "metrics.csv").read_text().count("update,") == 1  # one header
    assert [r["update"] for r in read_jsonl(tmp_path / "eval_mean.jsonl")] == [4, 4, 8, 8]

    RunLogger(tmp_path, sweep_runs(2, 2), resume_from_update=0).close()  # start over
    assert all(read_jsonl(tmp_path / f"{stem}.jsonl") == [] for stem in TABLES)
    assert read_csv(tmp_path / "metrics.csv") == []
    assert (tmp_path / "metrics.csv").read_text().startswith("update,env_steps,")


def test_resume_with_other_columns_is_an_error(tmp_path):
    rng = np.random.default_rng(6)
    write_three_chunks(tmp_path, rng).close()
    log = RunLogger(tmp_path, sweep_runs(2, 2), resume_from_update=4)
    with pytest.raises(ValueError, match="has columns"):
        log.log_updates(5, 64, {"episode_return": np.zeros((4, 2))})
    log.close()


def test_complete_lines_survive_sigkill(tmp_path):
    """A process killed right after log_updates leaves whole lines in every file."""
    spec = importlib.util.find_spec("purejaxppo.loggers")
    script = f"""
import importlib.util, os, signal, sys, numpy as np
spec = importlib.util.spec_from_file_location("loggers", {spec.origin!r})
loggers = importlib.util.module_from_spec(spec)
sys.modules["loggers"] = loggers  # dataclasses look their module up
spec.loader.exec_module(loggers)
log = loggers.RunLogger({str(tmp_path)!r}, [{{"seed": 0}}, {{"seed": 1}}])
log.log_updates(1, 10, {{"episode_return": np.arange(6.0).reshape(2, 3)}})
log.log_eval(3, 30, np.ones((2, 4)), np.ones((2, 4)))
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    for stem, count in (("metrics", 6), ("metrics_mean", 3), ("eval", 2), ("eval_mean", 1)):
        assert (tmp_path / f"{stem}.jsonl").read_text().endswith("\n")
        assert len(read_jsonl(tmp_path / f"{stem}.jsonl")) == count
        assert len(read_csv(tmp_path / f"{stem}.csv")) == count
    assert [r["episode_return"] for r in read_csv(tmp_path / "metrics.csv")] == [0, 3, 1, 4, 2, 5]


# -- TensorBoard -----------------------------------------------------------------------


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


def test_tensorboard_one_run(tmp_path):
    pytest.importorskip("tensorboardX")
    rng = np.random.default_rng(7)
    metrics = fake_metrics(rng, 1, 6, first=1)
    metrics["episode_return"][0, :2] = [np.nan, 12.5]
    with RunLogger(tmp_path, [{"run": 0}], tensorboard=True) as log:
        log.log_updates(1, 64, metrics)
        log.log_eval(6, 384, np.array([[1.0, 3.0]]), np.array([[5, 7]]))
    tags = scalars(tmp_path / "tb")
    assert set(tags) == {
        "episode_return",
        "policy_loss",
        "lr",
        "updates_done",
        "early_stopped",
        *EVAL_COLUMNS,
    }
    ret = metrics["episode_return"][0]
    finite = ~np.isnan(ret)
    assert [s for s, _ in tags["episode_return"]] == list((np.arange(1, 7) * 64)[finite])
    assert_same([v for _, v in tags["episode_return"]], ret[finite])
    assert_same([v for _, v in tags["policy_loss"]], metrics["policy_loss"][0])
    assert tags["eval/return"] == [(384, 2.0)] and tags["eval/length"] == [(384, 6.0)]


def test_tensorboard_sweep_layout_and_resume_purge(tmp_path):
    pytest.importorskip("tensorboardX")
    rng = np.random.default_rng(8)
    runs = [*sweep_runs(2, 2), {"run": 4, "config": 2, "seed": 0, "lr": 1e-2}]
    with RunLogger(tmp_path, runs, tensorboard=True) as log:
        metrics = fake_metrics(rng, 5, 4, first=1)
        log.log_updates(1, 64, metrics)
    tb = tmp_path / "tb"
    # Runs and the means of groups of more than one run (config 2 has a single seed).
    assert sorted(p.name for p in tb.iterdir()) == [
        "c0_mean",
        "c0_s0",
        "c0_s1",
        "c1_mean",
        "c1_s0",
        "c1_s1",
        "c2_s0",
    ]
    assert_same([v for _, v in scalars(tb / "c1_s0")["policy_loss"]], metrics["policy_loss"][2])
    mean = quiet_nanmean(metrics["policy_loss"][2:4], axis=0)
    np.testing.assert_allclose([v for _, v in scalars(tb / "c1_mean")["policy_loss"]], mean, 1e-6)

    with RunLogger(tmp_path, runs, tensorboard=True, resume_from_update=2) as log:
        log.log_updates(3, 64, fake_metrics(rng, 5, 1, first=3))
    events = read_events(tb / "c0_s0")
    starts = [e.step for e in events if e.HasField("session_log")]
    assert starts == [2 * 64 + 1]  # TensorBoard drops the earlier events from this step on


def test_missing_optional_packages_name_the_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ImportError, match="pip install wandb"):
        RunLogger(tmp_path / "a", [{"seed": 0}], wandb=True)
    with pytest.raises(ImportError, match="pip install tensorboardX"):
        RunLogger(tmp_path / "b", [{"seed": 0}], tensorboard=True)


# -- Weights & Biases ------------------------------------------------------------------


def test_wandb_offline_run_under_run_dir(tmp_path, monkeypatch):
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
    run_dir = tmp_path / "run"
    rng = np.random.default_rng(9)
    start = time.perf_counter()
    with RunLogger(
        run_dir, sweep_runs(2, 2), wandb={"project": "pjp-test"}, config={"lr": 1}
    ) as log:
        log.log_updates(1, 64, fake_metrics(rng, 4, 3, first=1))
        log.log_eval(3, 192, rng.normal(size=(4, 2)), np.ones((4, 2)))
    seconds = time.perf_counter() - start
    run_id = (run_dir / "wandb_run_id").read_text().strip()
    (run_file,) = run_dir.glob(f"wandb/offline-run-*-{run_id}/run-{run_id}.wandb")
    # wandb 0.31's run.finish() returns before its wandb-core service has written the
    # transaction log (it is complete at the latest when the process exits): poll.
    deadline = time.perf_counter() + 10
    while b"runs/eval/return/c0_s1" not in (data := run_file.read_bytes()):
        assert time.perf_counter() < deadline, f"{run_file} incomplete after 10 s"
        time.sleep(0.02)
    # Group means per config, per-run returns under runs/, env_steps as the x-axis.
    for key in ("episode_return/c0", "policy_loss/c1", "runs/episode_return/c1_s0"):
        assert key.encode() in data, key
    assert b"eval/return/c1" in data and b"runs/eval/return/c0_s1" in data
    assert b"runs/policy_loss" not in data
    assert b"env_steps" in data and b"pjp-test" in data
    assert (run_dir / "metrics.csv").exists()
    assert seconds < 15, f"wandb offline took {seconds:.1f} s"

    # Resuming continues the stored run id (offline: a new directory with the same id).
    with RunLogger(run_dir, sweep_runs(2, 2), wandb=True, resume_from_update=2) as log:
        log.log_updates(3, 64, fake_metrics(rng, 4, 1, first=3))
    assert len(list(run_dir.glob(f"wandb/offline-run-*-{run_id}"))) >= 1
    assert (run_dir / "wandb_run_id").read_text().strip() == run_id


# -- helpers and errors ----------------------------------------------------------------


def test_groups_names_and_legend():
    runs = sweep_runs(2, 3)
    groups = group_runs(runs)
    assert [(g.name, g.runs) for g in groups] == [("c0", (0, 1, 2)), ("c1", (3, 4, 5))]
    assert groups[1].labels == {"config": 1, "lr": 1e-3}
    assert run_names(runs)[:2] == ["c0_s0", "c0_s1"]
    assert group_legend_labels(groups) == ["lr=0.0003", "lr=0.001"]
    seeds = [{"seed": s} for s in range(3)]
    (only,) = group_runs(seeds)
    assert only.name == "all" and only.runs == (0, 1, 2)
    assert run_names([{"a": 1}, {"a": 2}]) == ["run0", "run1"]


def test_errors_name_the_argument(tmp_path):
    with pytest.raises(ValueError, match="same label keys"):
        RunLogger(tmp_path / "a", [{"seed": 0}, {"config": 0}])
    with pytest.raises(TypeError, match=r"runs\[0\]\['f'\]"):
        RunLogger(tmp_path / "a", [{"f": object()}])
    with pytest.raises(ValueError, match="resume_from_update=-1"):
        RunLogger(tmp_path / "a", [{"seed": 0}], resume_from_update=-1)
    log = RunLogger(tmp_path / "b", sweep_runs(2, 2))
    with pytest.raises(ValueError, match=r"metrics\['x'\] has shape \(3, 5\)"):
        log.log_updates(1, 64, {"x": np.zeros((3, 5))})
    with pytest.raises(ValueError, match="first_update=0"):
        log.log_updates(0, 64, {"x": np.zeros((4, 5))})
    with pytest.raises(ValueError, match="different numbers of updates"):
        log.log_updates(1, 64, {"x": np.zeros((4, 5)), "y": np.zeros((4, 4))})
    log.log_updates(1, 64, {"x": np.zeros((4, 5))})
    with pytest.raises(ValueError, match="same metrics"):
        log.log_updates(6, 64, {"y": np.zeros((4, 5))})
    with pytest.raises(ValueError, match="lengths has shape"):
        log.log_eval(5, 320, np.zeros((4, 3)), np.zeros((4, 2)))
    log.close()
    log.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        log.log_updates(6, 64, {"x": np.zeros((4, 5))})


def test_readers_skip_a_cut_last_line(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"update": 1, "x": null}\n{"update": 2, "x"')
    (row,) = read_jsonl(tmp_path / "m.jsonl")
    assert row["update"] == 1 and math.isnan(row["x"])
    (tmp_path / "m.csv").write_text("update,x,name\n1,nan,a\n2,0.5")
    (row,) = read_csv(tmp_path / "m.csv")
    assert row["update"] == 1 and math.isnan(row["x"]) and row["name"] == "a"


# -- plots -----------------------------------------------------------------------------


def test_smooth_is_a_nan_aware_trailing_mean():
    x = np.array([[1.0, np.nan, 3.0, 5.0, np.nan, np.nan, np.nan]])
    np.testing.assert_allclose(smooth(x, 2), [[1.0, 1.0, 3.0, 4.0, 5.0, np.nan, np.nan]])
    np.testing.assert_array_equal(smooth(x, 1), x)


def check_png(path: Path) -> None:
    image_module = pytest.importorskip("PIL.Image")
    assert path.stat().st_size > 0
    with image_module.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 100 and image.size[1] > 100
        image.load()


def test_plot_one_run(tmp_path):
    pytest.importorskip("matplotlib")
    steps = np.arange(1, 101) * 64
    returns = np.linspace(0, 200, 100)
    returns[::3] = np.nan
    out = plot_learning_curves(tmp_path / "sub" / "curve.png", steps, returns, [{"seed": 0}])
    assert out == tmp_path / "sub" / "curve.png"
    check_png(out)


def test_plot_groups_with_nans_and_eval_points(tmp_path):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(10)
    runs = sweep_runs(3, 4)
    steps = np.arange(1, 51) * 1024
    returns = rng.normal(size=(12, 50)).cumsum(axis=1)
    returns[rng.random(returns.shape) < 0.4] = np.nan
    returns[0:4, :10] = np.nan  # config 0: no episode ended yet
    returns[5] = np.nan  # one run never finished an episode
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for spread in ("std", "minmax", "none"):
            out = plot_learning_curves(
                tmp_path / f"sweep_{spread}.png",
                steps,
                returns,
                runs,
                eval_points=(steps[9::10], rng.normal(size=(12, 5))),
                title="sweep",
                spread=spread,
                smoothing=3,
            )
            check_png(out)
        per_group = plot_learning_curves(
            tmp_path / "g.png", steps, returns, runs, eval_points=(steps[::25], np.ones((3, 2)))
        )
        check_png(per_group)
    with pytest.raises(ValueError, match="len\\(runs\\)=2"):
        plot_learning_curves(tmp_path / "x.png", steps, returns, runs[:2])
    with pytest.raises(ValueError, match="spread='iqr'"):
        plot_learning_curves(tmp_path / "x.png", steps, returns, runs, spread="iqr")


def test_plot_without_matplotlib_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        plot_learning_curves(tmp_path / "x.png", np.arange(3), np.zeros(3), [{"seed": 0}])


def test_module_imports_no_jax():
    """loggers.py and plots.py import neither JAX nor matplotlib at module level."""
    for name in ("loggers", "plots"):
        source = Path(importlib.util.find_spec(f"purejaxppo.{name}").origin).read_text()
        top = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
        assert not any(re.search(r"\b(jax|matplotlib)\b", line) for line in top), top
