"""Learning-curve plots of PPO runs (host side: numpy and matplotlib, no JAX).

matplotlib is imported when a plot is drawn, and drawn on a `Figure` with the Agg
canvas directly, so no global backend (pyplot) is touched.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from purejaxppo.io.labels import group_legend_labels, group_runs
from purejaxppo.io.tables import nanmean

SPREADS = ("std", "minmax", "none")


def smooth(x: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over the last `window` entries of the last axis, NaN ignored (NaN
    where the whole window is NaN). x: [..., U] -> [..., U]."""
    if window <= 1:
        return np.asarray(x, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    mask = ~np.isnan(x)
    pad = [(0, 0)] * (x.ndim - 1) + [(1, 0)]
    total = np.pad(np.cumsum(np.where(mask, x, 0.0), axis=-1), pad)
    count = np.pad(np.cumsum(mask, axis=-1), pad)
    lo = np.maximum(np.arange(x.shape[-1]) + 1 - window, 0)
    hi = np.arange(1, x.shape[-1] + 1)
    s, n = total[..., hi] - total[..., lo], count[..., hi] - count[..., lo]
    return np.divide(s, n, out=np.full(s.shape, np.nan), where=n > 0)


def _spread(x: np.ndarray, mean: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper edge of the band across runs (axis 0), NaN ignored."""
    mask = ~np.isnan(x)
    count = mask.sum(axis=0)
    empty = count == 0
    if kind == "minmax":
        lo = np.where(empty, np.nan, np.where(mask, x, np.inf).min(axis=0))
        hi = np.where(empty, np.nan, np.where(mask, x, -np.inf).max(axis=0))
        return lo, hi
    dev = np.where(mask, x - mean, 0.0)
    var = np.divide((dev * dev).sum(axis=0), count, out=np.full(mean.shape, np.nan), where=~empty)
    std = np.sqrt(var)
    return mean - std, mean + std


def _import_matplotlib() -> tuple[Any, Any]:
    try:
        figure = importlib.import_module("matplotlib.figure")
        backend_agg = importlib.import_module("matplotlib.backends.backend_agg")
    except ImportError as e:
        raise ImportError(
            "plot_learning_curves needs the matplotlib package, which is not installed: "
            "pip install matplotlib"
        ) from e
    return figure.Figure, backend_agg.FigureCanvasAgg


def plot_learning_curves(
    path: str | os.PathLike,
    env_steps: np.ndarray,
    returns: np.ndarray,
    runs: Sequence[Mapping[str, Any]],
    *,
    group_key: str = "config",
    eval_points: tuple[np.ndarray, np.ndarray] | None = None,
    title: str | None = None,
    spread: str = "std",
    smoothing: int | None = None,
    ylabel: str = "episode return",
) -> Path:
    """Write a PNG of episode return against env steps, one curve per group of runs.

    env_steps: [U] env steps of one run after each update.
    returns: [R, U] episode_return of each run per update (NaN where no episode ended);
        [U] for a single run.
    runs: R label dicts; runs sharing `runs[i][group_key]` (the seeds of one config) form
        a group. Legend: the labels that differ between groups (e.g. `lr=0.0003`).
    eval_points: optional (env steps [P], mean eval returns [R, P] per run or [G, P] per
        group, groups in order of first appearance), drawn as markers on each group's
        curve colour; per-run values are averaged over the group.
    spread: the shaded band across a group's runs: "std" (mean +- 1 std, default),
        "minmax" (lowest to highest run) or "none".
    smoothing: trailing window in updates applied to each run before averaging, NaN
        ignored; default max(1, U // 50) (1 = none). The figure notes the window used.

    Each curve is the mean over the group's runs of the smoothed returns; a run that is
    NaN at an update is left out there, and where all are NaN the curve has a gap.
    Returns the path written (parent directories are created).
    """
    where = "plot_learning_curves"
    steps, values, window = _check_curves(env_steps, returns, runs, spread, smoothing, where)

    groups = group_runs(runs, group_key)
    labels = group_legend_labels(groups, group_key) if len(groups) > 1 else [None]
    eval_steps, eval_means = _eval_means(eval_points, groups, len(runs), where)

    Figure, FigureCanvasAgg = _import_matplotlib()
    fig = Figure(figsize=(7, 4.5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colors = _colors(len(groups))
    smoothed = smooth(values, window)
    for j, (group, label) in enumerate(zip(groups, labels, strict=True)):
        x = smoothed[list(group.runs)]
        mean = nanmean(x, axis=0)
        ax.plot(steps, mean, color=colors[j], lw=1.5, label=label)
        if spread != "none" and len(group.runs) > 1:
            lo, hi = _spread(x, mean, spread)
            ax.fill_between(steps, lo, hi, color=colors[j], alpha=0.2, lw=0)
        if eval_steps is not None:
            ax.plot(eval_steps, eval_means[j], ls="none", marker="o", ms=4, color=colors[j])

    note = _notes(groups, spread, window, eval_steps is not None)
    if note:
        ax.set_title("; ".join(note), fontsize=8, loc="left", color="0.35")
    if title:
        fig.suptitle(title)
    ax.set_xlabel("env steps")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 4))
    if len(groups) > 1:
        ax.legend(fontsize=8, ncols=1 if len(groups) <= 10 else 2)

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def _check_curves(
    env_steps: np.ndarray,
    returns: np.ndarray,
    runs: Sequence[Mapping[str, Any]],
    spread: str,
    smoothing: int | None,
    where: str,
) -> tuple[np.ndarray, np.ndarray, int]:
    """The validated env steps [U], returns [R, U] (float64) and smoothing window."""
    steps = np.asarray(env_steps, dtype=np.float64)
    if steps.ndim != 1 or steps.size == 0:
        raise ValueError(f"{where}: env_steps has shape {steps.shape}: must be [U] with U >= 1")
    values = np.asarray(returns, dtype=np.float64)
    if values.ndim == 1:
        values = values[None]
    if values.ndim != 2 or values.shape[1] != steps.size:
        raise ValueError(
            f"{where}: returns has shape {np.shape(returns)}: must be [R, U] with "
            f"U = len(env_steps) = {steps.size}"
        )
    if len(runs) != values.shape[0]:
        raise ValueError(
            f"{where}: len(runs)={len(runs)} but returns has R={values.shape[0]} runs: "
            "they must match"
        )
    if spread not in SPREADS:
        raise ValueError(f"{where}: spread={spread!r}: must be one of {SPREADS}")
    window = max(1, steps.size // 50) if smoothing is None else smoothing
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 1:
        raise ValueError(f"{where}: smoothing={smoothing!r}: must be a positive integer")
    return steps, values, window


def _notes(groups: list, spread: str, window: int, has_eval: bool) -> list[str]:
    """The figure's small print: what each curve and band is."""
    counts = sorted({len(g.runs) for g in groups})
    note: list[str] = []
    if counts != [1]:
        note.append(f"mean over {'/'.join(map(str, counts))} runs per curve")
    if spread != "none" and counts[-1] > 1:
        note.append("shaded: ±1 std" if spread == "std" else "shaded: min–max")
    if window > 1:
        note.append(f"trailing mean over {window} updates")
    if has_eval:
        note.append("markers: evaluation")
    return note


def _eval_means(
    eval_points: tuple[np.ndarray, np.ndarray] | None, groups: list, num_runs: int, where: str
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """eval_points as (steps [P], per-group means [G, P])."""
    if eval_points is None:
        return None, None
    if not isinstance(eval_points, tuple | list) or len(eval_points) != 2:
        raise ValueError(
            f"{where}: eval_points={eval_points!r}: must be (env_steps [P], returns [R or G, P])"
        )
    steps = np.asarray(eval_points[0], dtype=np.float64)
    values = np.asarray(eval_points[1], dtype=np.float64)
    if values.ndim == 1:
        values = values[None]
    if steps.ndim != 1 or values.ndim != 2 or values.shape[1] != steps.size:
        raise ValueError(
            f"{where}: eval_points shapes {steps.shape} and {np.shape(eval_points[1])}: must "
            "be [P] and [R, P] (per run) or [G, P] (per group)"
        )
    if values.shape[0] == num_runs:
        return steps, np.stack([nanmean(values[list(g.runs)], axis=0) for g in groups])
    if values.shape[0] == len(groups):
        return steps, values
    raise ValueError(
        f"{where}: eval_points returns have {values.shape[0]} rows: must be R={num_runs} "
        f"(per run) or G={len(groups)} (per group)"
    )


def _colors(n: int) -> list[Any]:
    """The default colour cycle for up to 10 curves, evenly spaced viridis beyond."""
    if n <= 10:
        return [f"C{i}" for i in range(n)]
    cmap = importlib.import_module("matplotlib").colormaps["viridis"]
    return [cmap(i / (n - 1)) for i in range(n)]
