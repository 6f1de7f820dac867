"""Learning-curve plots (purejaxppo.io.plots) of fake numpy returns (no JAX)."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from log_helpers import sweep_runs

from purejaxppo.io.plots import plot_learning_curves, smooth


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
