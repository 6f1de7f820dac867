"""`purejaxppo train`: readable one-line errors for bad flags, progress and a summary."""

import pytest

from purejaxppo.cli import main


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--num-minibatches", "3"], "--num-minibatches=3: must divide the batch"),
        (["--env", "CartPol-v1"], "did you mean 'CartPole-v1'"),
        (["--num-envs", "0"], "--num-envs=0: must be a positive integer"),
        (["--lr", "-1"], "--lr=-1"),
        (["--num-seeds", "0"], "--num-seeds=0"),
    ],
)
def test_bad_flags_exit_2_with_one_line(argv, expected, capsys):
    assert main(["train", *argv]) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert err.startswith("error: ") and "Traceback" not in err


def test_train_prints_progress_and_final_return(capsys):
    code = main(["train", "--total-timesteps", "2048", "--num-chunks", "2", "--num-seeds", "2"])
    assert code == 0
    out = capsys.readouterr().out
    assert "update 2/4" in out and "update 4/4" in out
    assert "final return (mean of last 10 updates) over 2 seeds: mean" in out
    assert "env steps/s after compiling" in out


def test_missing_brax_is_one_line_error(monkeypatch, capsys):
    from purejaxppo.envs import gymnax_adapter

    def no_brax(env_id, *args):
        raise ImportError(f"Config.env={env_id!r} needs Brax: pip install 'purejaxppo[brax]'")

    monkeypatch.setattr(gymnax_adapter, "make_brax_env", no_brax)
    assert main(["train", "--env", "brax/hopper"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "purejaxppo[brax]" in err and "Traceback" not in err
