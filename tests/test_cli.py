"""The `purejaxppo` command: flags round-trip into Config, one-line errors, and the
train / eval / render / bench subcommands."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import tyro
from helpers import SMALL

from purejaxppo import Config
from purejaxppo.cli import (
    NOT_FLAGS,
    _base_config,
    build_train_config,
    config_field_docs,
    fit_options_from_args,
    main,
    make_train_args,
)
from purejaxppo.config import static_differences
from purejaxppo.io.checkpoints import Checkpointer
from purejaxppo.io.loggers import read_jsonl

SMALL_FLAGS = [
    "--num-envs", "4", "--num-steps", "16", "--num-minibatches", "2", "--update-epochs", "2",
]  # fmt: skip


def parse(argv: list[str]) -> Config:
    """What `purejaxppo train ARGV` would train, without training."""
    base, defaults = _base_config(argv)
    args = tyro.cli(make_train_args(base, defaults), args=argv)
    return build_train_config(args, base)


def assert_same_config(a: Config, b: Config) -> None:
    assert static_differences(a, b) == []
    assert a.to_dict() == b.to_dict()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], Config()),
        (
            [
                "--lr",
                "1e-3",
                "--num-envs",
                "8",
                "--hidden-sizes",
                "32",
                "32",
                "--target-kl",
                "0.02",
            ],
            Config(lr=1e-3, num_envs=8, hidden_sizes=(32, 32), target_kl=0.02),
        ),
        (
            ["--total-timesteps", "1e6", "--normalize-obs", "--activation", "relu"],
            Config(total_timesteps=1_000_000, normalize_obs=True, activation="relu"),
        ),
        (
            ["--env", "Pendulum-v1", "--continuous-dist", "tanh_gaussian", "--no-clip-value-loss"],
            Config(env="Pendulum-v1", continuous_dist="tanh_gaussian", clip_value_loss=False),
        ),
        (
            ["--preset", "Breakout-MinAtar", "--lr", "1e-4"],
            Config.preset("Breakout-MinAtar", lr=1e-4),
        ),
        (["--preset", "brax/ant"], Config.preset("brax/ant")),
    ],
)
def test_flags_round_trip_into_config(argv, expected):
    assert_same_config(parse(argv), expected)


def test_every_config_field_is_a_documented_flag(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name, doc in config_field_docs().items():
        if name == "env_params":
            continue
        assert f"--{name.replace('_', '-')}" in text, name
        assert " ".join(doc.split()[:3]) in text or name == "env", name


def test_every_fit_option_is_a_documented_flag(capsys):
    from purejaxppo.config import attribute_docs
    from purejaxppo.runner.options import FitOptions

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    # The fields whose flags take another form, and those flags.
    forms = {
        "eval_deterministic": ["--eval-stochastic"],
        "wandb": ["--wandb", "--wandb-project", "--wandb-mode"],
        "progress": ["--progress", "--no-progress"],
        "compile_cache": ["--compile-cache", "--no-compile-cache"],
        "pbt": ["--pbt-every", "--pbt-explore", "--pbt-fraction", "--pbt-fitness", "--pbt-window"],
    }
    assert set(NOT_FLAGS) == {"callbacks", "mesh"}  # Python objects
    for name, doc in attribute_docs(FitOptions).items():
        if name in NOT_FLAGS:
            continue
        for flag in forms.get(name, [f"--{name.replace('_', '-')}"]):
            assert re.search(rf"{flag}[ ,]", text), flag
        if name not in forms:
            assert " ".join(doc.split()[:4]) in text, name


def test_runner_flags_become_fit_options():
    def options(argv):
        base, defaults = _base_config(argv)
        args = tyro.cli(make_train_args(base, defaults), args=argv)
        return fit_options_from_args(args, args.out)

    default = options([])
    assert default.num_seeds is None and default.verbose and default.progress is None
    assert default.compile_cache is True and default.wandb is False
    assert default.eval_deterministic and default.keep_checkpoints == 3
    argv = ["--eval-stochastic", "--no-progress", "--no-compile-cache", "--wandb"]
    argv += ["--wandb-mode", "offline", "--keep-checkpoints", "0", "--eval-every", "0"]
    argv += ["--no-plot", "--out", "x"]
    changed = options(argv)
    assert not changed.eval_deterministic and changed.progress is False
    assert changed.compile_cache is False and changed.keep is None
    assert changed.wandb == {"project": "purejaxppo", "mode": "offline"}
    assert changed.eval_every == 0 and not changed.plot
    assert options(["--compile-cache", "/tmp/c"]).compile_cache == Path("/tmp/c")


def test_yaml_config_file_then_flags(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("preset: Acrobot-v1\nnum_envs: 8\nlr: 0.001\nhidden_sizes: [32, 16]\n")
    config = parse(["--config", str(path), "--gamma", "0.95"])
    expected = Config.preset("Acrobot-v1", num_envs=8, lr=1e-3, hidden_sizes=(32, 16), gamma=0.95)
    assert_same_config(config, expected)
    # A run's own config.yaml (Config.to_dict) reads back to the same Config.
    import yaml

    path.write_text(yaml.safe_dump(expected.to_dict()))
    assert_same_config(parse(["--config", str(path)]), expected)


def test_sweep_flag_is_a_grid_over_traced_fields():
    config = parse(["--sweep", "lr=1e-3,3e-4", "ent-coef=0,0.01"])
    assert config.batch_shape == (4,)
    np.testing.assert_allclose(config.lr, [1e-3, 1e-3, 3e-4, 3e-4])
    np.testing.assert_allclose(config.ent_coef, [0, 0.01, 0, 0.01])


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--num-minibatches", "3"], "--num-minibatches=3: must divide the batch"),
        (["--env", "CartPol-v1"], "did you mean 'CartPole-v1'"),
        (["--num-envs", "0"], "--num-envs=0: must be a positive integer"),
        (["--lr", "-1"], "--lr=-1"),
        (["--num-seeds", "0"], "--num-seeds=0"),
        (["--preset", "Cartpole"], "no such preset; did you mean 'CartPole-v1'"),
        (["--sweep", "num_envs=4,8"], "num_envs is not one: it is a static field"),
        (["--sweep", "lr"], "write NAME=V1,V2"),
        (["--config", "/nonexistent.yaml"], "--config=/nonexistent.yaml: cannot read it"),
        (["--resume", "/nonexistent-run"], "--resume=/nonexistent-run: no such run directory"),
        (["--checkpoint-every", "3", "--chunk-updates", "2"], "must be a multiple of"),
    ],
)
def test_bad_flags_exit_2_with_one_line(argv, expected, capsys, tmp_path):
    assert main(["train", *argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert err.startswith("error: ") and "Traceback" not in err


def test_missing_brax_is_one_line_error(monkeypatch, capsys):
    from purejaxppo.envs import gymnax_adapter

    def no_brax(env_id, *args):
        raise ImportError(f"Config.env={env_id!r} needs Brax: pip install 'purejaxppo[brax]'")

    monkeypatch.setattr(gymnax_adapter, "make_brax_env", no_brax)
    assert main(["train", "--env", "brax/hopper"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "purejaxppo[brax]" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """`purejaxppo train` with 2 seeds in 2 chunks: (run directory, printed output)."""
    out = tmp_path_factory.mktemp("cli") / "run"
    argv = ["train", *SMALL_FLAGS, "--total-timesteps", "256", "--num-seeds", "2"]
    argv += ["--num-chunks", "2", "--out", str(out), "--no-compile-cache"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(argv) == 0
    return out, printed.getvalue()


def test_train_prints_progress_summary_and_writes_the_run(cli_run):
    out, text = cli_run
    assert "update 2/4" in text and "update 4/4" in text
    assert "final return (mean of last 10 updates) over 2 seeds: mean" in text
    assert "env steps/s after compiling" in text
    assert f"run directory: {out}" in text
    for name in ("metrics.csv", "metrics.jsonl", "learning_curve.png", "config.yaml"):
        assert (out / name).exists(), name
    assert (out / "policies" / "c0_s1" / "policy.json").exists()


def test_train_into_an_existing_run_is_refused(cli_run, capsys):
    out, _ = cli_run
    before = (out / "metrics.jsonl").read_text()
    assert main(["train", *SMALL_FLAGS, "--out", str(out)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (out / "metrics.jsonl").read_text() == before


def test_eval_command_reports_every_run(cli_run, capsys):
    out, _ = cli_run
    assert main(["eval", str(out), "--episodes", "3"]) == 0
    text = capsys.readouterr().out
    assert "run 0 (config 0, seed 0): return mean" in text
    assert "run 1 (config 0, seed 1): return mean" in text
    assert main(["eval", str(out / "policies" / "c0_s0"), "--episodes", "3"]) == 0
    assert "3 deterministic episodes" in capsys.readouterr().out
    assert main(["eval", str(out / "nothing-here")]) == 2


def test_resume_a_finished_run_is_a_no_op_with_its_own_options(cli_run, capsys):
    out, _ = cli_run
    # No --num-seeds here: the run's own layout (2 seeds) is the default on resume;
    # the checkpoints folder names the same run.
    assert main(["train", "--resume", str(out / "checkpoints"), "--no-compile-cache"]) == 0
    assert f"run directory: {out} " in capsys.readouterr().out
    assert not (out / "checkpoints" / "metrics.jsonl").exists()
    assert len(read_jsonl(out / "metrics.jsonl")) == 2 * 4
    assert main(["train", "--resume", str(out), "--num-envs", "8"]) == 1
    assert "num_envs (checkpoint 4, now 8)" in capsys.readouterr().err
    assert main(["train", "--resume", str(out), "--preset", "Acrobot-v1"]) == 2
    assert "--preset cannot change it" in capsys.readouterr().err


def test_resume_defaults_are_the_runs_saved_options(cli_run):
    from purejaxppo.io.checkpoints import Checkpointer

    out, _ = cli_run
    meta = Checkpointer(out / "checkpoints", create=False).read_meta()[1]
    base, defaults = _base_config(["--resume", str(out)])
    args = tyro.cli(make_train_args(base, defaults), args=["--resume", str(out)])
    resumed = fit_options_from_args(args, None)
    assert resumed.saved(num_seeds=2) == meta["runner"]
    assert resumed.num_seeds == 2 and resumed.num_chunks == 2
    argv = ["--resume", str(out), "--eval-episodes", "5"]
    flags = tyro.cli(make_train_args(base, defaults), args=argv)
    assert fit_options_from_args(flags, None).eval_episodes == 5  # a flag still wins


def test_sweep_trains_every_grid_point_in_one_compile(monkeypatch, tmp_path, capsys):
    from purejaxppo.runner import program as runner

    lowered = []
    original = runner._run_chunk_jit

    class Counting:
        def lower(self, *args):
            lowered.append(args[2:])
            return original.lower(*args)

    monkeypatch.setattr(runner, "_run_chunk_jit", Counting())
    out = tmp_path / "sweep"
    argv = ["train", *SMALL_FLAGS, "--total-timesteps", "256", "--num-chunks", "1"]
    argv += ["--sweep", "lr=1e-3,3e-4", "ent-coef=0,0.01", "--out", str(out)]
    assert main([*argv, "--no-compile-cache"]) == 0
    assert len(lowered) == 1  # one chunk program for all 4 grid points
    text = capsys.readouterr().out
    assert "[lr=0.0003, ent_coef=0.01]" in text
    rows = read_jsonl(out / "metrics.jsonl")
    # The swept lr is a label, renamed because the lr metric (the schedule) is a column.
    points = {(r["label/lr"], r["ent_coef"]) for r in rows}
    assert points == {(1e-3, 0.0), (1e-3, 0.01), (3e-4, 0.0), (3e-4, 0.01)}
    assert len(rows) == 4 * 4


def test_render_command_writes_a_gif(cli_run, capsys, tmp_path):
    pytest.importorskip("pygame")
    out, _ = cli_run
    gif = tmp_path / "episode.gif"
    assert main(["render", str(out), "--run", "1", "--max-steps", "5", "--out", str(gif)]) == 0
    assert "length 5" in capsys.readouterr().out
    from PIL import Image

    assert Image.open(gif).n_frames == 5
    assert main(["render", str(out), "--run", "7"]) == 2
    assert "--run=7: the checkpoint holds 2 runs" in capsys.readouterr().err


def test_bench_command_saves_its_rows(tmp_path, capsys):
    path = tmp_path / "bench.json"
    flags = [*SMALL_FLAGS, "--total-timesteps", str(SMALL["total_timesteps"])]
    assert main(["bench", *flags, "--seeds", "1", "2", "--out", str(path)]) == 0
    report = json.loads(path.read_text())
    assert [r["seeds"] for r in report["runs"]] == [1, 2]
    assert all(r["steps_per_s"] > 0 for r in report["runs"])
    assert "k steps/s" in capsys.readouterr().out


def test_dict_observations_and_a_privileged_critic_from_the_command_line(tmp_path, capsys):
    argv = ["--env", "probe/PrivilegedReward", "--policy-obs-key", "state"]
    argv += ["--value-obs-key", "privileged_state", "state"]
    config = parse(argv)
    assert config.policy_obs_key == "state"
    assert config.value_obs_key == ("privileged_state", "state")
    out = tmp_path / "run"
    flags = [*SMALL_FLAGS, "--total-timesteps", "256", "--no-compile-cache"]
    assert main(["train", *argv, *flags, "--out", str(out)]) == 0
    assert main(["eval", str(out), "--episodes", "3"]) == 0
    assert "return mean" in capsys.readouterr().out


def test_population_based_training_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "pbt"
    argv = ["train", *SMALL_FLAGS, "--total-timesteps", "512", "--num-seeds", "3"]
    argv += [
        "--pbt-every",
        "2",
        "--pbt-explore",
        "lr=perturb:1e-5:1e-2",
        "ent-coef=resample:0:0.05",
    ]
    argv += ["--pbt-fitness", "explained_variance", "--out", str(out), "--no-compile-cache"]
    assert main(argv) == 0
    rows = read_jsonl(out / "metrics.jsonl")
    assert {"pbt_parent", "pbt_lr", "pbt_ent_coef"} <= set(rows[0])
    assert len(rows) == 3 * 8
    copied = [r for r in rows if r["pbt_parent"] != r["seed"]]
    assert copied and all(r["update"] % 2 == 0 for r in copied)  # only at PBT steps
    # The run's PBT settings are saved, so --resume continues the same population.
    _, meta = Checkpointer(out / "checkpoints", create=False).read_meta()
    assert meta["runner"]["pbt"]["explore"] == [
        "lr=perturb:1e-05:0.01:0.8,1.25",
        "ent_coef=resample:0.0:0.05",
    ]
    base, defaults = _base_config(["train", "--resume", str(out)])
    args = tyro.cli(make_train_args(base, defaults), args=["--resume", str(out)])
    assert fit_options_from_args(args, out).pbt.to_dict() == meta["runner"]["pbt"]
    capsys.readouterr()
    assert main(["train", *SMALL_FLAGS, "--pbt-explore", "lr=perturb"]) == 2
    assert "--pbt-explore: population-based training needs --pbt-every N" in capsys.readouterr().err
    assert main(["train", *SMALL_FLAGS, "--pbt-every", "2", "--pbt-explore", "lr=jitter"]) == 2
    assert "PBT.explore['lr']='jitter': write perturb" in capsys.readouterr().err


def test_presets_command_lists_sources_and_prints_a_yaml_config(tmp_path, capsys):
    from purejaxppo.presets import PRESETS

    assert main(["presets"]) == 0
    listing = capsys.readouterr().out
    for name, preset in PRESETS.items():
        assert f"\n{name}\n" in f"\n{listing}" and preset.source in listing
    assert "published: gymnax README table of the gymnax-blines PPO checkpoints (R: -80)" in listing
    # `presets NAME` is a --config file that gives back the preset, field for field.
    for name in ("MountainCar-v0", "brax/hopper", "Breakout-MinAtar"):
        assert main(["presets", name]) == 0
        path = tmp_path / f"{name.replace('/', '-')}.yaml"
        path.write_text(capsys.readouterr().out)
        assert_same_config(parse(["--config", str(path)]), Config.preset(name))
    assert main(["presets", "Acrobat"]) == 2
    assert "did you mean 'Acrobot-v1'?" in capsys.readouterr().err
