"""The log writers (purejaxppo.io.writers) through RunLogger: SB3 tag names in TensorBoard
events and W&B runs, fps/wall_time columns and tags, one W&B run per seed grouped by
config, W&B resume by the stored ids; on fake numpy metrics (no JAX)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
from log_helpers import (
    assert_same,
    fake_metrics,
    read_events,
    scalars,
    sweep_runs,
    wandb_offline_env,
    wandb_records,
)

from purejaxppo.io.loggers import RunLogger, read_csv, read_jsonl
from purejaxppo.io.writers import TAGS, tag_of

# Our metric names -> the tags SB3 users know (the list, spelled out literally so
# a change of writers.TAGS shows up here).
SB3 = {
    "episode_return": "rollout/ep_rew_mean",
    "episode_length": "rollout/ep_len_mean",
    "approx_kl": "train/approx_kl",
    "clip_frac": "train/clip_fraction",
    "value_loss": "train/value_loss",
    "policy_loss": "train/policy_gradient_loss",
    "entropy": "train/entropy_loss",
    "lr": "train/learning_rate",
    "explained_variance": "train/explained_variance",
    "clip_eps": "train/clip_range",
    "fps": "time/fps",
    "wall_time": "time/time_elapsed",
    "eval/return": "eval/mean_reward",
    "eval/length": "eval/mean_ep_length",
    "eval/return_std": "eval/std_reward",
    "eval/return_min": "eval/min_reward",
    "eval/return_max": "eval/max_reward",
}


def ppo_metrics(rng: np.random.Generator, num_runs: int, num: int) -> dict[str, np.ndarray]:
    names = [n for n in SB3 if "/" not in n and n not in ("fps", "wall_time")]
    return {n: rng.normal(size=(num_runs, num)).astype(np.float32) for n in names}


def test_tag_table():
    for name, tag in SB3.items():
        assert tag_of(name) == (tag, -1.0 if name == "entropy" else 1.0), name
    assert tag_of("beta") == ("train/beta", 1.0)  # ours, under train/
    assert tag_of("my_metric") == ("train/my_metric", 1.0)  # not in the table: train/<name>
    assert tag_of("custom/x") == ("custom/x", 1.0)  # already namespaced: kept
    tags = [tag for tag, _ in TAGS.values()]
    assert len(set(tags)) == len(tags)  # one column per tag
    assert all(tag.split("/")[0] in ("rollout", "train", "time", "eval") for tag in tags)


def test_tensorboard_sb3_tags_fps_and_wall_time(tmp_path):
    pytest.importorskip("tensorboardX")
    rng = np.random.default_rng(11)
    chunks = [ppo_metrics(rng, 4, 3), ppo_metrics(rng, 4, 2)]
    with RunLogger(tmp_path, sweep_runs(2, 2), tensorboard=True) as log:
        log.log_updates(1, 64, chunks[0], fps=1000.0, wall_time=1.5)
        log.log_updates(4, 64, chunks[1], fps=2000.0, wall_time=2.25)
        log.log_eval(5, 320, np.array([[1.0, 3.0]] * 4), np.full((4, 2), 9))
    full = {n: np.concatenate([c[n] for c in chunks], axis=1) for n in chunks[0]}
    steps = [u * 64 for u in range(1, 6)]
    for logdir, row, values in (("c1_s0", 2, full), ("c1_mean", 1, None)):
        tags = scalars(tmp_path / "tb" / logdir)
        assert set(tags) == set(SB3.values())
        for name, tag in SB3.items():
            if "/" in name or name in ("fps", "wall_time"):
                continue
            assert [s for s, _ in tags[tag]] == steps, tag
            want = full[name][2 * row : 2 * row + 2].mean(0) if values is None else full[name][row]
            sign = -1.0 if name == "entropy" else 1.0  # SB3's entropy_loss is -entropy
            np.testing.assert_allclose([v for _, v in tags[tag]], sign * want, rtol=1e-5)
        # fps and elapsed time at the last update of each call, in env steps.
        assert tags["time/fps"] == [(3 * 64, 1000.0), (5 * 64, 2000.0)]
        assert tags["time/time_elapsed"] == [(3 * 64, 1.5), (5 * 64, 2.25)]
        assert tags["eval/mean_reward"] == [(320, 2.0)]
        assert tags["eval/std_reward"] == [(320, 1.0)]
        assert tags["eval/mean_ep_length"] == [(320, 9.0)]
    assert all(e.step <= 320 for e in read_events(tmp_path / "tb" / "c0_s0"))


def test_fps_and_wall_time_columns(tmp_path):
    rng = np.random.default_rng(12)
    with RunLogger(tmp_path, sweep_runs(2, 2)) as log:
        log.log_updates(1, 64, fake_metrics(rng, 4, 3, 1), fps=512.5, wall_time=3.0)
        log.log_updates(4, 64, fake_metrics(rng, 4, 2, 4))  # not measured: NaN
        log.log_updates(6, 64, fake_metrics(rng, 4, 1, 6), fps=100, wall_time=9.5)
        with pytest.raises(ValueError, match=r"fps=-1\.0: must be >= 0"):
            log.log_updates(7, 64, fake_metrics(rng, 4, 1, 7), fps=-1.0)
        with pytest.raises(TypeError, match="wall_time='3': must be a number"):
            log.log_updates(7, 64, fake_metrics(rng, 4, 1, 7), wall_time="3")
        with pytest.raises(ValueError, match="'fps' is reserved"):
            log.log_updates(7, 64, {**fake_metrics(rng, 4, 1, 7), "fps": np.ones((4, 1))})
    for stem, per_update in (("metrics", 4), ("metrics_mean", 2)):
        for rows in (read_csv(tmp_path / f"{stem}.csv"), read_jsonl(tmp_path / f"{stem}.jsonl")):
            assert list(rows[0])[-2:] == ["fps", "wall_time"]
            by_update = {r["update"]: (r["fps"], r["wall_time"]) for r in rows}
            assert by_update[3] == (512.5, 3.0) and by_update[6] == (100.0, 9.5)
            for update in (1, 2, 4, 5):
                assert all(math.isnan(v) for v in by_update[update]), (stem, update)
            assert len(rows) == 6 * per_update
            assert len({(r["fps"], r["wall_time"]) for r in rows if r["update"] == 3}) == 1

    # The first call fixes the columns: without fps there, a later fps has nowhere to go.
    with RunLogger(tmp_path / "b", [{"seed": 0}]) as log:
        log.log_updates(1, 64, {"x": np.zeros(2)}, wall_time=1.0)
        with pytest.raises(ValueError, match=r"fps=5\.0: the first call logged no 'fps'"):
            log.log_updates(3, 64, {"x": np.zeros(2)}, fps=5.0, wall_time=2.0)
    assert list(read_csv(tmp_path / "b" / "metrics.csv")[0]) == [
        "update",
        "env_steps",
        "seed",
        "x",
        "wall_time",
    ]


def wandb_runs(run_dir: Path, count: int) -> dict[str, dict]:
    """run name -> {id, group, project, config, history} of the offline W&B runs."""
    files = sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == count, files
    out = {}
    for path in files:
        # wandb 0.31's run.finish() returns before its wandb-core service has written the
        # whole transaction log (complete at the latest when the process exits): poll.
        deadline = time.perf_counter() + 10
        while b"eval/mean_reward" not in path.read_bytes():
            assert time.perf_counter() < deadline, f"{path} incomplete after 10 s"
            time.sleep(0.02)
        info: dict = {"history": []}
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run = record.run
                config = {i.key: json.loads(i.value_json) for i in run.config.update}
                info.update(id=run.run_id, group=run.run_group, project=run.project)
                info.update(name=run.display_name, config=config)
            elif kind == "history":
                items = record.history.item  # "a/b" keys may come as nested_key ["a", "b"]
                row = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in items}
                info["history"].append({k: v for k, v in row.items() if not k.startswith("_")})
        out[info["name"]] = info
    return out


def test_wandb_one_run_per_seed_grouped_by_config(tmp_path, monkeypatch):
    wandb_offline_env(monkeypatch, tmp_path)
    run_dir = tmp_path / "run"
    rng = np.random.default_rng(13)
    metrics = ppo_metrics(rng, 4, 2)
    metrics["episode_return"][1, 0] = np.nan  # no episode ended: not logged
    start = time.perf_counter()
    kwargs = {"project": "pjp-test"}
    with RunLogger(run_dir, sweep_runs(2, 2), wandb=kwargs, config={"gamma": 0.99}) as log:
        log.log_updates(1, 64, metrics, fps=640.0, wall_time=0.2)
        log.log_eval(2, 128, np.array([[1.0, 3.0]] * 4), np.full((4, 2), 7))
    seconds = time.perf_counter() - start
    ids = json.loads((run_dir / "wandb_run_ids.json").read_text())
    runs = wandb_runs(run_dir, 4)
    assert sorted(runs) == sorted(ids) == ["c0_s0", "c0_s1", "c1_s0", "c1_s1"]
    for r, (name, run) in enumerate(sorted(runs.items())):
        assert run["id"] == ids[name] and run["project"] == "pjp-test"
        assert run["group"] == name.split("_")[0]  # W&B groups the seeds of a config
        assert run["config"]["gamma"] == 0.99
        assert run["config"]["run_labels"] == sweep_runs(2, 2)[r]
        first, second, evaluation = run["history"]
        assert (first["update"], first["env_steps"], second["env_steps"]) == (1, 64, 128)
        assert_same(second["train/value_loss"], metrics["value_loss"][r, 1])
        assert_same(second["train/entropy_loss"], -metrics["entropy"][r, 1])
        assert "time/fps" not in first and (second["time/fps"], second["time/time_elapsed"]) == (
            640.0,
            0.2,
        )
        assert evaluation == {
            "update": 2,
            "env_steps": 128,
            "eval/mean_reward": 2.0,
            "eval/std_reward": 1.0,
            "eval/min_reward": 1.0,
            "eval/max_reward": 3.0,
            "eval/mean_ep_length": 7.0,
        }
    assert "rollout/ep_rew_mean" not in runs["c0_s1"]["history"][0]  # NaN skipped
    assert seconds < 15, f"wandb offline took {seconds:.1f} s"

    # Resuming continues each stored run id.
    with RunLogger(run_dir, sweep_runs(2, 2), wandb=True, resume_from_update=1) as log:
        log.log_updates(2, 64, ppo_metrics(rng, 4, 1))
    # Offline: a new directory offline-run-<time>-<id>[-<n>] per resumed id.
    dirs = {p.name.split("-")[3] for p in run_dir.glob("wandb/offline-run-*")}
    assert dirs == set(ids.values())  # no new run
    assert json.loads((run_dir / "wandb_run_ids.json").read_text()) == ids
    with pytest.raises(ValueError, match=r"wandb\['id'\]='x': one id cannot name 4"):
        RunLogger(tmp_path / "other", sweep_runs(2, 2), wandb={"id": "x"})


def test_wandb_one_run_keeps_the_users_names(tmp_path, monkeypatch):
    wandb_offline_env(monkeypatch, tmp_path)
    kwargs = {"project": "p", "name": "mine", "group": "exp"}
    with RunLogger(tmp_path / "run", [{"seed": 3}], wandb=kwargs) as log:
        log.log_eval(0, 0, np.ones((1, 2)), np.ones((1, 2)))
    (run,) = wandb_runs(tmp_path / "run", 1).values()
    assert (run["name"], run["group"]) == ("mine", "exp")
    assert run["history"] == [
        {
            "update": 0,
            "env_steps": 0,
            "eval/mean_reward": 1.0,
            "eval/std_reward": 0.0,
            "eval/min_reward": 1.0,
            "eval/max_reward": 1.0,
            "eval/mean_ep_length": 1.0,
        }
    ]
    # Several runs: the user's name and group prefix each run's own.
    with RunLogger(tmp_path / "two", [{"seed": 0}, {"seed": 1}], wandb=kwargs) as log:
        log.log_eval(0, 0, np.ones((2, 2)), np.ones((2, 2)))
    runs = wandb_runs(tmp_path / "two", 2)
    assert {(r["name"], r["group"]) for r in runs.values()} == {
        ("mine-s0", "exp-all"),
        ("mine-s1", "exp-all"),
    }
