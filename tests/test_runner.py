"""`fit`: chunked == one-shot, run-directory files, checkpoints (resume, damage,
mismatch, SIGKILL), the non-finite guard and evaluation inside the runner."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from helpers import assert_trees_equal, to_numpy

import purejaxppo
from purejaxppo import CheckpointError, Config, NonFiniteError, fit
from purejaxppo.io.checkpoints import Checkpointer
from purejaxppo.io.loggers import read_csv, read_jsonl
from purejaxppo.runner.fit import load_run, plan_chunk_updates
from purejaxppo.runner.options import FitOptions, resume_defaults, saved_option_names

# 4 envs x 16 steps, 8 updates: chunks of 2 updates give 4 checkpoints.
RUN = dict(num_envs=4, num_steps=16, num_minibatches=2, update_epochs=2, total_timesteps=512)
QUIET = dict(compile_cache=False, progress=False)


@pytest.fixture(scope="module")
def run_config() -> Config:
    return Config(**RUN)


@pytest.fixture(scope="module")
def reference(run_config):
    """One-shot train(run_config, key(7)): the result every chunked/resumed run must hit."""
    return jax.block_until_ready(jax.jit(purejaxppo.train)(run_config, jax.random.key(7)))


@pytest.fixture(scope="module")
def two_seed_run(run_config, tmp_path_factory):
    """fit with 2 seeds, chunks of 2 updates, a checkpoint after each, evaluation every
    4 updates, TensorBoard."""
    out = tmp_path_factory.mktemp("fit") / "run"
    result = fit(
        run_config,
        0,
        num_seeds=2,
        out=out,
        chunk_updates=2,
        checkpoint_every=2,
        eval_every=4,
        eval_episodes=3,
        tensorboard=True,
        **QUIET,
    )
    return result


def test_fit_equals_one_shot_train_bitwise(run_config, reference):
    # Chunks of 3, 3, 2 updates: two compiled chunk programs, the state donated between.
    out = fit(run_config, jax.random.key(7), chunk_updates=3, **QUIET)
    assert_trees_equal(out.state, reference.state)
    for name, values in reference.metrics.items():
        np.testing.assert_array_equal(out.metrics[name], np.asarray(values), err_msg=name)


def test_run_directory_has_every_metric_per_update(two_seed_run, run_config):
    out = two_seed_run.run_dir
    rows = read_jsonl(out / "metrics.jsonl")
    csv_rows = read_csv(out / "metrics.csv")
    assert len(rows) == len(csv_rows) == 2 * run_config.num_updates
    for row in rows + csv_rows:
        assert set(purejaxppo.METRIC_NAMES) <= set(row)
    by_run = {(r["seed"], r["update"]): r for r in rows}
    for seed in range(2):
        for u in range(1, run_config.num_updates + 1):
            row = by_run[seed, u]
            assert row["env_steps"] == u * run_config.batch_size
            for name in ("policy_loss", "value_loss", "entropy", "lr"):
                np.testing.assert_allclose(
                    row[name], two_seed_run.metrics[name][seed, u - 1], rtol=1e-6
                )
    means = read_jsonl(out / "metrics_mean.jsonl")
    assert len(means) == run_config.num_updates
    np.testing.assert_allclose(
        [m["value_loss"] for m in means], two_seed_run.metrics["value_loss"].mean(0), rtol=1e-5
    )
    assert (out / "learning_curve.png").stat().st_size > 0
    assert (out / "config.yaml").exists()
    assert Config.from_dict(__import__("yaml").safe_load((out / "config.yaml").read_text()))


def test_evaluation_inside_the_runner_is_logged(two_seed_run):
    evals = two_seed_run.evals
    np.testing.assert_array_equal(evals.updates, [4, 8])
    assert evals.returns.shape == (2, 2, 3)  # [seeds, evaluations, episodes]
    rows = read_jsonl(two_seed_run.run_dir / "eval.jsonl")
    assert [(r["update"], r["seed"]) for r in rows] == [(4, 0), (4, 1), (8, 0), (8, 1)]
    for r in rows:
        k = [4, 8].index(r["update"])
        np.testing.assert_allclose(r["eval/return"], evals.returns[r["seed"], k].mean(), rtol=1e-6)


def test_tensorboard_event_file_is_readable(two_seed_run):
    from log_helpers import scalars  # reads event files with tensorboardX's protobufs

    # SB3's tag names (purejaxppo.io.writers.TAGS), env steps on the x axis.
    tags = scalars(two_seed_run.run_dir / "tb" / "c0_s1")
    assert [step for step, _ in tags["train/value_loss"]] == [u * 64 for u in range(1, 9)]
    np.testing.assert_allclose(
        [v for _, v in tags["train/value_loss"]], two_seed_run.metrics["value_loss"][1], rtol=1e-6
    )
    assert [step for step, _ in tags["eval/mean_reward"]] == [4 * 64, 8 * 64]


def test_checkpoints_keep_the_last_three_and_restore_exactly(two_seed_run):
    ck = Checkpointer(two_seed_run.run_dir / "checkpoints", create=False)
    assert ck.steps() == [4, 6, 8]
    loaded = load_run(two_seed_run.run_dir)
    assert loaded.update == 8 and loaded.num_seeds == 2
    assert_trees_equal(loaded.state, two_seed_run.state)
    for name, values in two_seed_run.metrics.items():
        np.testing.assert_array_equal(loaded.metrics[name], values, err_msg=name)


def test_exported_policies_act_like_the_trained_state(two_seed_run):
    config = Config(**RUN)
    obs = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    for seed in range(2):
        policy = purejaxppo.load_policy(
            two_seed_run.run_dir / "policies" / f"c0_s{seed}", deterministic=True
        )
        state = jax.tree.map(lambda x, s=seed: x[s], two_seed_run.state)
        expected = purejaxppo.make_policy(config, state, deterministic=True)(obs)
        np.testing.assert_array_equal(policy(obs), expected)


def _copy_run(src: Path, dst: Path, keep_steps: list[int]) -> Path:
    shutil.copytree(src, dst)
    for step in Checkpointer(dst / "checkpoints", create=False).steps():
        if step not in keep_steps:
            shutil.rmtree(dst / "checkpoints" / str(step))
    return dst


def test_resume_from_a_middle_checkpoint_equals_uninterrupted(two_seed_run, run_config, tmp_path):
    run = _copy_run(two_seed_run.run_dir, tmp_path / "run", keep_steps=[4])
    resumed = fit(
        run_config,
        123,
        num_seeds=2,
        resume=run,
        checkpoint_every=2,
        eval_every=4,
        eval_episodes=3,
        **QUIET,
    )
    assert_trees_equal(resumed.state, two_seed_run.state)
    for name, values in two_seed_run.metrics.items():
        np.testing.assert_array_equal(resumed.metrics[name], values, err_msg=name)
    np.testing.assert_array_equal(resumed.evals.returns, two_seed_run.evals.returns)
    # The logs were cut back to update 4 and continued: one row per run and update.
    rows = read_jsonl(run / "metrics.jsonl")
    assert sorted((r["seed"], r["update"]) for r in rows) == [
        (s, u) for s in range(2) for u in range(1, 9)
    ]


def test_resume_from_an_older_checkpoint_sets_newer_ones_aside(two_seed_run, run_config, tmp_path):
    run = _copy_run(two_seed_run.run_dir, tmp_path / "run", keep_steps=[4, 6, 8])
    resumed = fit(
        run_config, 0, resume=run, resume_step=4, checkpoint_every=2, eval_every=4,
        eval_episodes=3, **QUIET,
    )  # fmt: skip
    assert_trees_equal(resumed.state, two_seed_run.state)
    (aside,) = run.glob("checkpoints-after-4-*")
    assert sorted(p.name for p in aside.iterdir()) == ["6", "8"]  # moved, not deleted
    assert Checkpointer(run / "checkpoints", create=False).steps() == [4, 6, 8]


def test_a_fresh_run_never_writes_into_an_existing_one(two_seed_run, run_config, tmp_path):
    run = _copy_run(two_seed_run.run_dir, tmp_path / "run", keep_steps=[8])
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match="already holds a run"):
        fit(run_config, 0, out=run, **QUIET)
    with pytest.raises(ValueError, match="already holds a run"):
        fit(run_config, 0, num_seeds=2, resume=two_seed_run.run_dir, out=run, **QUIET)
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_config_mismatch_is_refused_naming_the_fields(two_seed_run, run_config):
    changed = run_config.replace(num_envs=8, hidden_sizes=(32,))
    with pytest.raises(CheckpointError, match=r"hidden_sizes .*num_envs \(checkpoint 4, now 8\)"):
        fit(changed, 0, num_seeds=2, resume=two_seed_run.run_dir, **QUIET)
    with pytest.raises(CheckpointError, match="holds runs"):
        fit(run_config, 0, num_seeds=3, resume=two_seed_run.run_dir, **QUIET)


def test_damaged_checkpoint_is_rejected_never_used(two_seed_run, tmp_path):
    run = _copy_run(two_seed_run.run_dir, tmp_path / "run", keep_steps=[6, 8])
    # Flip bytes in the largest array file of the latest checkpoint.
    files = [p for p in (run / "checkpoints" / "8" / "arrays").rglob("*") if p.is_file()]
    target = max(files, key=lambda p: p.stat().st_size)
    data = bytearray(target.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 64] = bytes(b ^ 0xFF for b in data[mid : mid + 64])
    target.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"checkpoints/8 is damaged.*updates \[6\]"):
        load_run(run)
    # Named explicitly, the intact older one still loads.
    assert load_run(run, step=6).update == 6
    # A broken meta file is an error too, not a silent fallback.
    (run / "checkpoints" / "6" / "meta" / "metadata").write_text("{not json")
    with pytest.raises(CheckpointError, match="meta file"):
        load_run(run, step=6)


def test_half_written_checkpoint_is_never_listed(two_seed_run, tmp_path):
    run = _copy_run(two_seed_run.run_dir, tmp_path / "run", keep_steps=[4])
    # What a save killed mid-write leaves behind: orbax's temporary directory.
    partial = run / "checkpoints" / "6.orbax-checkpoint-tmp-1234567890"
    shutil.copytree(run / "checkpoints" / "4", partial)
    (partial / "meta" / "metadata").write_text(json.dumps({"format": 1, "update": 6}))
    assert Checkpointer(run / "checkpoints", create=False).steps() == [4]
    assert load_run(run).update == 4


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(run_config, tmp_path):
    out = tmp_path / "run"
    # 4 good updates, stopped by a callback (which writes a checkpoint) ...
    fit(run_config, 0, out=out, chunk_updates=2, callbacks=[lambda r: r.update < 4], **QUIET)
    good = load_run(out)
    assert good.update == 4
    # ... then resumed with rewards scaled to overflow float32: the next update fails.
    poisoned = run_config.replace(reward_scale=1e30)
    with pytest.raises(NonFiniteError, match=r"non-finite value_loss at update 5.*checkpoints/4"):
        fit(poisoned, 0, resume=out, **QUIET)
    assert max(Checkpointer(out / "checkpoints", create=False).steps()) == 4
    again = load_run(out)
    assert_trees_equal(again.state, good.state)


def test_chunk_plan_follows_checkpoint_and_eval_intervals():
    assert plan_chunk_updates(100, checkpoint_every=20, eval_every=30) == 10
    assert plan_chunk_updates(100, num_chunks=10) == 10
    assert plan_chunk_updates(8, chunk_updates=50) == 8
    with pytest.raises(ValueError, match="checkpoint_every=5: must be a multiple of"):
        plan_chunk_updates(100, chunk_updates=2, checkpoint_every=5)
    with pytest.raises(ValueError, match="eval_every=-1"):
        plan_chunk_updates(100, eval_every=-1)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (dict(num_seeds=0), "FitOptions.num_seeds=0: must be a positive integer"),
        (dict(eval_episodes=0), "FitOptions.eval_episodes=0: must be a positive integer"),
        (dict(keep_checkpoints=-1), "FitOptions.keep_checkpoints=-1: must be an integer >= 0"),
        (dict(num_chunks=2.5), "FitOptions.num_chunks=2.5: must be a positive integer"),
        (dict(checkpoint_seconds=-1), "FitOptions.checkpoint_seconds=-1: must be a number >= 0"),
        (dict(chunk_updates=2, eval_every=3), "eval_every=3: must be a multiple of chunk_updates"),
        (dict(tensorboard=True), "needs a run directory"),
        (dict(eval_deterministic="yes"), "FitOptions.eval_deterministic='yes': must be a bool"),
        (dict(callbacks=print), "FitOptions.callbacks=<built-in function print>: must be a"),
        (dict(callbacks=[1]), r"FitOptions.callbacks=\(1,\): must be a sequence of callables"),
        (dict(wandb="offline"), "FitOptions.wandb='offline': must be a bool or a dict"),
    ],
)
def test_fit_options_are_checked_before_anything_compiles(run_config, options, expected):
    with pytest.raises(ValueError, match=expected):
        FitOptions(**options)
    with pytest.raises(ValueError, match=expected):
        fit(run_config, 0, **options)  # no compile: this would take seconds, not raise


def test_fit_takes_options_and_keyword_overrides(run_config):
    with pytest.raises(TypeError, match=r"unknown option\(s\) num_seed; the options are"):
        fit(run_config, 0, num_seed=2)
    with pytest.raises(TypeError, match="must be a FitOptions"):
        fit(run_config, 0, {"num_seeds": 2})
    options = FitOptions(num_seeds=2, eval_every=4)
    assert FitOptions.build(options, eval_every=None, verbose=True) == FitOptions(
        num_seeds=2, verbose=True
    )
    assert FitOptions.build(None, out="x").out == "x"
    # Every option has a docstring (the CLI's help text and the docs come from them).
    from purejaxppo.config import attribute_docs

    assert set(attribute_docs(FitOptions)) == {f for f in FitOptions.__dataclass_fields__}


def test_checkpoints_save_the_fit_options_and_resume_from_them(two_seed_run):
    meta = Checkpointer(two_seed_run.run_dir / "checkpoints", create=False).read_meta()[1]
    runner = meta["runner"]
    assert set(runner) == set(saved_option_names()) | {"num_seeds"}
    assert json.loads(json.dumps(runner)) == runner  # plain data
    given = FitOptions(
        num_seeds=2, chunk_updates=2, checkpoint_every=2, eval_every=4, eval_episodes=3,
        tensorboard=True, out="run",
    )  # fmt: skip
    assert runner == given.saved(num_seeds=2)
    # The saved options are the defaults of a resumed run: they round-trip.
    defaults = resume_defaults(meta)
    assert FitOptions(**defaults, resume="run").saved(num_seeds=2) == runner
    assert {k: getattr(given, k) for k in defaults} == defaults


def test_a_stop_right_after_a_checkpoint_gathers_on_no_process():
    # Process 1 of a multi-process run has no checkpointer, so it never sees the path
    # process 0 wrote; it must still know a save just happened, or it would start the
    # (collective) gather of the state alone after a callback's stop.
    from types import SimpleNamespace

    from purejaxppo.runner.hooks import CheckpointHook
    from purejaxppo.runner.run import ChunkEvent

    gathers = []
    program = SimpleNamespace(agree=lambda flag: flag, host_state=gathers.append)
    run = SimpleNamespace(
        options=FitOptions(checkpoint_every=2), num_updates=8, program=program,
        state="state", checkpointer=None,
    )  # fmt: skip
    hook = CheckpointHook(say=print)
    hook.on_start(run)
    for first, gathered in ((1, 1), (3, 2)):  # update 2: due; update 4: due
        event = ChunkEvent(first, first, 2, 0.0, {}, True, stop=True)
        hook.on_chunk(run, event)
        hook.on_stop(run, event)
        assert len(gathers) == gathered  # one gather per chunk, never a second one
    hook = CheckpointHook(say=print)
    run.options = FitOptions(checkpoint_every=4)
    hook.on_start(run)
    event = ChunkEvent(1, 1, 2, 0.0, {}, True, stop=True)  # update 2: not due
    hook.on_chunk(run, event)
    assert len(gathers) == 2
    hook.on_stop(run, event)  # the stop's own save: every process gathers
    assert len(gathers) == 3


_KILLED_RUN = textwrap.dedent(
    """
    import sys, time
    import jax, numpy as np
    from purejaxppo import Config, fit

    out, cache, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    config = Config(**{run})

    def report(r):
        print(f"update {{r.update}} checkpoint {{r.checkpoint is not None}}", flush=True)
        if mode == "slow":
            time.sleep(1.0)  # time for the parent to kill this process mid-run

    result = fit(
        config, 7, out=out, chunk_updates=2, checkpoint_every=4,
        resume=out if mode == "resume" else None,
        callbacks=[report], compile_cache=cache, progress=False,
    )
    leaves = jax.tree.leaves(result.state.params)
    np.savez(out + "/final.npz", *[np.asarray(x) for x in leaves])
    print("done", flush=True)
    """
)


def _python(script: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,  # its own process group, killed as a whole
    )


def _kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _read_until(proc: subprocess.Popen, marker: str, timeout: float) -> list[str]:
    """Lines of proc's output up to the one starting with `marker` (hard timeout)."""
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if not ready:
            continue
        line = proc.stdout.readline()
        if not line:
            break  # the process ended
        seen.append(line)
        if line.startswith(marker):
            return seen
    raise AssertionError(f"no {marker!r} within {timeout} s:\n{''.join(seen)}")


# The same run with a GRU: the hidden state of every env, mid-episode at the kill, is
# in the checkpoint.
RECURRENT_RUN = {**RUN, "recurrent": "gru", "recurrent_size": 16}


@pytest.mark.parametrize(
    "run",
    # The GRU run (slow: ~70 s on 2 cores) adds the carry to what a kill must not lose;
    # test_recurrent's chunked fit checks the carry's round trip through the runner.
    [RUN, pytest.param(RECURRENT_RUN, marks=pytest.mark.slow)],
    ids=["mlp", "gru"],
)
def test_sigkill_then_resume_equals_uninterrupted(run, reference, tmp_path):
    if run is not RUN:
        reference = jax.jit(purejaxppo.train)(Config(**run), jax.random.key(7))
    script = tmp_path / "run.py"
    script.write_text(_KILLED_RUN.format(run=run))
    out, cache = tmp_path / "run", tmp_path / "cache"
    proc = _python(script, str(out), str(cache), "slow")
    try:
        # Checkpoints every 4 updates in chunks of 2: killed after update 6 was trained
        # and logged, so updates 5-6 are lost and must be redone.
        seen = _read_until(proc, "update 6", timeout=240)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        _kill_group(proc)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)
    assert "update 4 checkpoint True" in "".join(seen)
    assert Checkpointer(out / "checkpoints", create=False).steps() == [4]
    logged = [r["update"] for r in read_jsonl(out / "metrics.jsonl")]
    assert logged == list(range(1, 7))  # 5 and 6 were logged before the kill

    resumed = _python(script, str(out), str(cache), "resume")
    try:
        text, _ = resumed.communicate(timeout=240)
    finally:
        _kill_group(resumed)
    assert resumed.returncode == 0, text
    assert any(cache.iterdir())  # both processes used the persistent compilation cache
    final = np.load(out / "final.npz")
    expected = jax.tree.leaves(to_numpy(reference.state.params))
    for i, x in enumerate(expected):
        np.testing.assert_array_equal(final[f"arr_{i}"], x)
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["update"] for r in rows] == list(range(1, 9))  # cut back to 4, then 5..8
    np.testing.assert_array_equal(
        np.asarray([r["value_loss"] for r in rows], np.float32),  # logged as float32
        np.asarray(reference.metrics["value_loss"]),
    )


# ---- a population (PBT) through fit ------------------------------------------------------


def test_a_population_fits_in_chunks_logs_its_lineage_and_resumes_exactly(run_config, tmp_path):
    """fit(pbt=...) over a 3-point sweep equals one-shot train_population with
    split(key, 3); the run directory logs each member's parent and explored lr per
    update; resuming from update 3 (mid-way between two PBT steps) ends identically;
    resuming without the PBT settings is refused."""
    pbt = purejaxppo.PBT(
        every=2,
        explore={"lr": purejaxppo.Perturb(low=1e-5, high=1e-1)},
        fitness="explained_variance",
    )
    configs = Config.sweep(run_config.replace(lr_schedule="constant"), lr=[1e-4, 1e-3, 3e-3])
    one_shot = purejaxppo.train_population(configs, jax.random.split(jax.random.key(0), 3), pbt)
    out = tmp_path / "pop"
    full = fit(configs, 0, pbt=pbt, out=out, chunk_updates=3, checkpoint_every=3, **QUIET)
    assert_trees_equal(full.state, one_shot.state)
    for name, values in one_shot.metrics.items():
        np.testing.assert_array_equal(full.metrics[name], np.asarray(values), err_msg=name)
    assert_trees_equal(full.population_config, one_shot.config)
    parents = np.asarray(full.metrics["pbt_parent"])
    assert (parents != np.arange(3)[:, None]).any()  # some member copied another
    rows = read_jsonl(out / "metrics.jsonl")
    logged = {(r["config"], r["update"]): (r["pbt_parent"], r["pbt_lr"]) for r in rows}
    for c in range(3):
        for u in range(8):
            parent, lr = logged[(c, u + 1)]
            assert parent == parents[c, u]
            assert lr == pytest.approx(float(full.metrics["pbt_lr"][c, u]), rel=1e-6)

    run = _copy_run(out, tmp_path / "resumed", keep_steps=[3])
    resumed = fit(configs, 123, pbt=pbt, resume=run, checkpoint_every=3, **QUIET)
    assert_trees_equal(resumed.state, full.state)
    for name, values in full.metrics.items():
        np.testing.assert_array_equal(resumed.metrics[name], values, err_msg=name)
    with pytest.raises(CheckpointError, match=r"trained with pbt=\{'every': 2"):
        fit(configs, 0, resume=run, **QUIET)


def test_a_population_needs_a_one_dimensional_layout(run_config):
    pbt = purejaxppo.PBT(explore={"lr": purejaxppo.Perturb(high=1e-2)})
    sweep = Config.sweep(run_config, lr=[1e-4, 1e-3])
    with pytest.raises(ValueError, match=r"not both \(here 2 configs x 2 seeds\)"):
        fit(sweep, 0, num_seeds=2, pbt=pbt, **QUIET)
    with pytest.raises(ValueError, match=r"at least 2 runs"):
        fit(run_config, 0, pbt=pbt, **QUIET)
    with pytest.raises(ValueError, match=r"FitOptions.pbt=3: must be a purejaxppo.PBT or None"):
        fit(run_config, 0, pbt=3, **QUIET)


# ---- continuing a run to a larger budget ---------------------------------------------------


def test_a_finished_run_continues_to_a_larger_budget(run_config, tmp_path, capsys):
    """Like SB3's learn(reset_num_timesteps=False): with a constant learning rate the
    continued run equals one trained for the larger budget from the start; a linear
    schedule is stretched over the new length from the resumed update on."""
    short = run_config.replace(total_timesteps=256, lr_schedule="constant")  # 4 updates
    first = fit(short, 7, out=tmp_path / "run", **QUIET)
    longer = fit(short.replace(total_timesteps=512), 0, resume=tmp_path / "run", **QUIET)
    assert "resume: total_timesteps 256 -> 512: continuing from update 4 to 8" in (
        capsys.readouterr().err
    )
    uninterrupted = jax.jit(purejaxppo.train)(short.replace(total_timesteps=512), jax.random.key(7))
    assert_trees_equal(longer.state, uninterrupted.state)
    np.testing.assert_array_equal(longer.metrics["lr"][:4], first.metrics["lr"])
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [r["update"] for r in rows] == list(range(1, 9))

    linear = short.replace(lr_schedule="linear", lr=1e-3)
    fit(linear, 7, out=tmp_path / "linear", **QUIET)
    stretched = fit(linear.replace(total_timesteps=512), 0, resume=tmp_path / "linear", **QUIET)
    # Updates 1-4 ran with 1e-3 * (1 - u / 4); from update 5 on, 1e-3 * (1 - u / 8).
    expected = [1e-3 * (1 - u / 4) for u in range(4)] + [1e-3 * (1 - u / 8) for u in range(4, 8)]
    np.testing.assert_allclose(stretched.metrics["lr"], expected, rtol=1e-6)
    with pytest.raises(CheckpointError, match=r"total_timesteps=128 gives 2 updates, but the"):
        fit(linear.replace(total_timesteps=128), 0, resume=tmp_path / "linear", **QUIET)
