"""RunLogger (purejaxppo.io.loggers) and its tables and labels: CSV, JSONL, means, eval,
resume, torn lines, the TensorBoard layout, errors; on fake numpy metrics (no JAX). The
SB3 tags, fps/wall_time and W&B are in test_writers.py."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import re
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from log_helpers import (  # scalars: test_runner imports it from here
    assert_rows_equal,
    assert_same,
    fake_metrics,
    quiet_nanmean,
    read_events,
    scalars,
    sweep_runs,
)

from purejaxppo.io.loggers import (
    EVAL_COLUMNS,
    RunLogger,
    group_legend_labels,
    group_runs,
    read_csv,
    read_jsonl,
    run_names,
)

TABLES = ("metrics", "metrics_mean", "eval", "eval_mean")


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
    script = f"""
import os, signal, numpy as np
from purejaxppo.io import loggers
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
        "rollout/ep_rew_mean",
        "train/policy_gradient_loss",
        "train/learning_rate",
        "train/updates_done",
        "train/early_stopped",
        "eval/mean_reward",
        "eval/std_reward",
        "eval/min_reward",
        "eval/max_reward",
        "eval/mean_ep_length",
    }
    ret = metrics["episode_return"][0]
    finite = ~np.isnan(ret)
    assert [s for s, _ in tags["rollout/ep_rew_mean"]] == list((np.arange(1, 7) * 64)[finite])
    assert_same([v for _, v in tags["rollout/ep_rew_mean"]], ret[finite])
    assert_same([v for _, v in tags["train/policy_gradient_loss"]], metrics["policy_loss"][0])
    assert tags["eval/mean_reward"] == [(384, 2.0)] and tags["eval/mean_ep_length"] == [(384, 6.0)]


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
    loss = "train/policy_gradient_loss"
    assert_same([v for _, v in scalars(tb / "c1_s0")[loss]], metrics["policy_loss"][2])
    mean = quiet_nanmean(metrics["policy_loss"][2:4], axis=0)
    np.testing.assert_allclose([v for _, v in scalars(tb / "c1_mean")[loss]], mean, 1e-6)

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


def test_module_imports_no_jax():
    """The logging modules and plots.py import neither JAX nor matplotlib (nor the
    optional tensorboardX and wandb) at module level."""
    for name in ("loggers", "labels", "tables", "writers", "plots"):
        source = Path(importlib.util.find_spec(f"purejaxppo.io.{name}").origin).read_text()
        top = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
        assert not any(re.search(r"\b(jax|matplotlib|tensorboardX|wandb)\b", line) for line in top)
