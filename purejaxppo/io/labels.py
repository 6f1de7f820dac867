"""Run labels: the label dict of each logged run, its short name, and its group.

A run is named by a label dict such as `{"run": 3, "config": 1, "seed": 1, "lr": 3e-4}`.
Runs sharing the value of a group key (the seeds of one config) form a group; the
writers use the run names for TensorBoard directories and W&B run names, and the groups
for the `*_mean` files, the TensorBoard mean directories and the W&B `group`. numpy only.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Group:
    """Runs sharing one value of the group key (the seeds of one config)."""

    name: str  # "c0" for group_key "config", "<key>=<value>" otherwise, "all" for one group
    value: Any  # the group key's value; None for the implicit single group
    runs: tuple[int, ...]  # indices into `runs`
    labels: dict[str, Any]  # label values shared by all its runs


@dataclasses.dataclass(frozen=True)
class Layout:
    """The R logged runs: labels, names and groups, as every writer sees them."""

    runs: list[dict[str, Any]]  # one label dict per run, validated, same keys everywhere
    names: list[str]  # run_names(runs)
    groups: list[Group]  # group_runs(runs, group_key)

    @classmethod
    def of(cls, runs: Sequence[Mapping[str, Any]], group_key: str, where: str) -> Layout:
        clean = check_runs(runs, where)
        return cls(clean, run_names(clean), group_runs(clean, group_key))

    @property
    def num_runs(self) -> int:
        return len(self.runs)

    def shared_label_keys(self) -> list[str]:
        """Label keys shared within every group (e.g. config and the swept values)."""
        return [k for k in self.runs[0] if all(k in g.labels for g in self.groups)]


def check_runs(runs: Sequence[Mapping[str, Any]], where: str) -> list[dict[str, Any]]:
    """Validated copies of the run labels: same keys everywhere, JSON-like values."""
    if isinstance(runs, Mapping) or not isinstance(runs, Sequence) or len(runs) == 0:
        raise ValueError(f"{where}: runs={runs!r}: must be a non-empty list of label dicts")
    out: list[dict[str, Any]] = []
    for i, labels in enumerate(runs):
        if not isinstance(labels, Mapping):
            raise TypeError(f"{where}: runs[{i}]={labels!r}: must be a dict of labels")
        clean = {}
        for key, value in labels.items():
            if not isinstance(key, str) or not key:
                raise TypeError(f"{where}: runs[{i}] key {key!r}: label keys must be strings")
            clean[key] = _label_value(value, f"{where}: runs[{i}][{key!r}]")
        if i and clean.keys() != out[0].keys():
            raise ValueError(
                f"{where}: runs[{i}] has keys {list(clean)}, runs[0] has {list(out[0])}: "
                "every run must have the same label keys"
            )
        out.append(clean)
    return out


def _label_value(value: Any, where: str) -> Any:
    if isinstance(value, np.generic | np.ndarray):
        value = value.tolist()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_label_value(v, where) for v in value]
    raise TypeError(
        f"{where}={value!r}: a label must be None, a bool, int, float, str or a list of them"
    )


def group_runs(runs: Sequence[Mapping[str, Any]], group_key: str = "config") -> list[Group]:
    """The groups of `runs` by `runs[i][group_key]`, in order of first appearance; one
    group "all" of every run if no run has `group_key`."""
    runs = check_runs(runs, "group_runs")
    if group_key not in runs[0]:  # every run has the same keys
        return [Group("all", None, tuple(range(len(runs))), _shared(runs, range(len(runs))))]
    order: dict[str, list[int]] = {}
    values: dict[str, Any] = {}
    for i, labels in enumerate(runs):
        key = json.dumps(labels[group_key])  # hashable and 1 != True, unlike the value
        order.setdefault(key, []).append(i)
        values.setdefault(key, labels[group_key])
    groups = []
    for key, members in order.items():
        value = values[key]
        text = format_label(value)
        name = f"c{text}" if group_key == "config" else f"{group_key}={text}"
        groups.append(Group(_safe_name(name), value, tuple(members), _shared(runs, members)))
    return groups


def _shared(runs: list[dict[str, Any]], members: Sequence[int]) -> dict[str, Any]:
    first = runs[members[0]]
    return {k: v for k, v in first.items() if all(runs[i][k] == v for i in members)}


def run_names(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Short unique names of runs, for TensorBoard directories and W&B runs: `c0_s1` from
    config and seed labels, `s1` from a seed label alone, else `run<run label or index>`."""
    runs = check_runs(runs, "run_names")
    names = []
    for i, labels in enumerate(runs):
        if "config" in labels and "seed" in labels:
            name = f"c{format_label(labels['config'])}_s{format_label(labels['seed'])}"
        elif "seed" in labels:
            name = f"s{format_label(labels['seed'])}"
        else:
            name = f"run{format_label(labels.get('run', i))}"
        names.append(_safe_name(name))
    if len(set(names)) < len(names):
        names = [f"{name}_r{i}" for i, name in enumerate(names)]
    return names


def group_legend_labels(groups: Sequence[Group], group_key: str = "config") -> list[str]:
    """Legend text per group: the shared labels whose values differ between groups (the
    swept hyperparameters, e.g. `lr=0.0003`), else `<group_key>=<value>`."""
    skip = {"run", "seed", group_key}
    keys = [k for k in groups[0].labels if k not in skip and all(k in g.labels for g in groups)]
    swept = [k for k in keys if len({json.dumps(g.labels[k]) for g in groups}) > 1]
    if not swept:
        return [
            g.name if g.value is None else f"{group_key}={format_label(g.value)}" for g in groups
        ]
    return [", ".join(f"{k}={format_label(g.labels[k])}" for k in swept) for g in groups]


def format_label(value: Any) -> str:
    """A label value as short text: `0.0003` for floats, `64x64` for lists."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "x".join(format_label(v) for v in value)
    return str(value)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]", "_", name)
