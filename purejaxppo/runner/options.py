"""`FitOptions`: every option of the host runner `fit`, declared once.

Each field carries its docstring (read by `purejaxppo.config.attribute_docs`: the CLI help) and
whether a checkpoint saves it (`saved_option_names`): the saved options of a run are
the defaults of `purejaxppo train --resume`. Validation runs when the options are
built, before anything compiles; every error names the field, the value and the rule.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any


def check_count(name: str, value: Any, low: int, optional: bool = False) -> None:
    """Raise unless `value` is an integer >= low (or None when optional)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        rule = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise ValueError(f"{name}={value!r}: must be {rule}" + (" (or None)" if optional else ""))


def check_multiples(chunk_updates: int | None, **intervals: int | None) -> None:
    """Checkpoints and evaluations happen between chunks: their intervals must be
    multiples of an explicit `chunk_updates`."""
    if chunk_updates is None:
        return
    for name, every in intervals.items():
        if every and every % chunk_updates:
            raise ValueError(
                f"{name}={every}: must be a multiple of chunk_updates={chunk_updates} "
                "(checkpoints and evaluations happen between chunks)"
            )


def _saved(default: Any) -> Any:
    """A field saved in every checkpoint (a resumed run's default)."""
    return dataclasses.field(default=default, metadata={"saved": True})


@dataclasses.dataclass(frozen=True)
class FitOptions:
    """How `fit` runs the training of a Config: seeds, run directory, chunks,
    checkpoints, evaluation, loggers, progress, compilation cache and devices.

    `fit(config, key, num_seeds=4, out="runs/x")` builds one from its keyword
    arguments; `fit(config, key, options)` takes one (keywords then override it)."""

    num_seeds: int | None = _saved(None)
    """Seeds trained side by side (vmapped) for every sweep point; K seeds split the
    key, one seed uses the key itself. None: 1, or the resumed run's count."""
    out: str | Path | None = None
    """Run directory for config.yaml, logs, checkpoints, the learning curve and the
    final policy (the CLI's default: runs/<env>-<time>; with resume: the resumed
    run's directory). None writes nothing."""
    num_chunks: int = _saved(10)
    """About this many compiled chunks (one progress line each)."""
    chunk_updates: int | None = _saved(None)
    """Updates per compiled chunk (overrides num_chunks; default: the gcd of
    checkpoint_every and eval_every, else about num_updates / num_chunks)."""
    checkpoint_every: int | None = _saved(None)
    """Checkpoint every N updates (None: at the first chunk end checkpoint_seconds
    after the previous one; 0: only at the end). There is always one at the end."""
    checkpoint_seconds: float = _saved(60.0)
    """Without checkpoint_every: seconds between checkpoints (at chunk ends)."""
    keep_checkpoints: int | None = _saved(3)
    """Keep the last N checkpoints (0 or None: keep all)."""
    resume: str | Path | None = None
    """Continue the run in this directory (or its checkpoints/ folder) from its latest
    complete checkpoint; its static config fields and seeds must match."""
    resume_step: int | None = None
    """With resume: the checkpoint (update count) to continue from instead of the
    latest; the newer ones are moved aside, never deleted."""
    eval_every: int | None = _saved(None)
    """Evaluate every N updates (and at the end) on separate envs, logged as
    eval/return; 0 or None: no evaluation."""
    eval_episodes: int = _saved(10)
    """Episodes per evaluation, per run."""
    eval_deterministic: bool = _saved(True)
    """Evaluate with the mode of the policy (False: by sampling actions)."""
    video_every: int | None = _saved(None)
    """Every N updates (and at the end) draw one episode of the first run's
    deterministic policy to <out>/videos/update_<N>: an MP4 for Brax and Playground
    envs (rendered offline by their MuJoCo renderer), a GIF for gymnax envs; needs a
    run directory. 0 or None: no videos."""
    video_max_steps: int | None = _saved(None)
    """Cut each video's episode after this many steps (None: the episode's end)."""
    tensorboard: bool = _saved(False)
    """Also log to TensorBoard (event files in <out>/tb)."""
    wandb: bool | Mapping[str, Any] = False
    """Also log to Weights & Biases (pip install wandb): True, or wandb.init keyword
    arguments such as {"project": "ppo", "mode": "offline"}."""
    progress: bool | None = None
    """A progress bar on stderr (None: only when stderr is a terminal)."""
    verbose: bool = False
    """Print one line per chunk (str(ChunkReport))."""
    callbacks: Sequence[Callable[[Any], bool | None]] = ()
    """Called with each ChunkReport; returning False stops training after that chunk
    (a checkpoint is written first when there is a run directory)."""
    plot: bool = _saved(True)
    """Write the learning curve <out>/learning_curve.png at the end."""
    export_policy: bool = _saved(True)
    """Export the final policy to <out>/policy (several runs: <out>/policies/<run>)."""
    compile_cache: bool | str | Path = True
    """JAX's persistent compilation cache: True (~/.cache/purejaxppo/jax;
    $JAX_COMPILATION_CACHE_DIR wins), a directory, or False (off)."""
    mesh: Any = None
    """A jax.sharding.Mesh: train one data-parallel run over its data_axis devices (one
    config, one seed; also across processes after purejaxppo.distributed.initialize:
    every process runs every chunk, process 0 writes the files)."""
    data_axis: str = "dp"
    """The mesh axis the envs of a data-parallel run are split over."""
    pbt: Any = _saved(None)  # noqa: RUF009 (a purejaxppo.PBT or None)
    """Population-based training over the runs (purejaxppo.PBT, or its to_dict() form):
    the runs of a sweep, or the seeds of one config, form the population (not both);
    member i starts from jax.random.split(key, runs)[i], as in train_population. None:
    independent runs."""

    def __post_init__(self) -> None:
        if callable(self.callbacks) or isinstance(self.callbacks, str | bytes):
            raise ValueError(
                f"FitOptions.callbacks={self.callbacks!r}: must be a sequence of callables"
            )
        object.__setattr__(self, "callbacks", tuple(self.callbacks))  # a generator, once
        if isinstance(self.pbt, Mapping):  # the saved form (a resumed run's default)
            object.__setattr__(self, "pbt", _pbt_class().from_dict(self.pbt))
        self._check_counts()
        self._check_kinds()
        check_multiples(
            self.chunk_updates,
            checkpoint_every=self.checkpoint_every,
            eval_every=self.eval_every,
            video_every=self.video_every,
        )
        if self.video_every and self.out is None and self.resume is None:
            raise ValueError(
                f"FitOptions.video_every={self.video_every!r}: videos are written to the "
                "run directory; give out=..."
            )
        if (self.tensorboard or self.wandb) and self.out is None and self.resume is None:
            raise ValueError(
                f"FitOptions.tensorboard={self.tensorboard!r}, wandb={self.wandb!r}: logging "
                "there needs a run directory (out=...)"
            )

    def _check_counts(self) -> None:
        for name, low, optional in (
            ("num_seeds", 1, True),
            ("num_chunks", 1, False),
            ("chunk_updates", 1, True),
            ("checkpoint_every", 0, True),
            ("keep_checkpoints", 0, True),
            ("resume_step", 0, True),
            ("eval_every", 0, True),
            ("eval_episodes", 1, False),
            ("video_every", 0, True),
            ("video_max_steps", 1, True),
        ):
            check_count(f"FitOptions.{name}", getattr(self, name), low, optional)
        seconds = self.checkpoint_seconds
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ValueError(f"FitOptions.checkpoint_seconds={seconds!r}: must be a number >= 0")

    def _check_kinds(self) -> None:
        flags = ("eval_deterministic", "tensorboard", "verbose", "plot", "export_policy")
        for name in flags:
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"FitOptions.{name}={getattr(self, name)!r}: must be a bool")
        rules = (
            ("out", self.out is None or isinstance(self.out, str | os.PathLike), "a path or None"),
            (
                "resume",
                self.resume is None or isinstance(self.resume, str | os.PathLike),
                "a path or None",
            ),
            (
                "wandb",
                isinstance(self.wandb, bool | Mapping),
                "a bool or a dict of wandb.init arguments",
            ),
            (
                "progress",
                self.progress is None or isinstance(self.progress, bool),
                "a bool or None",
            ),
            (
                "compile_cache",
                isinstance(self.compile_cache, bool | str | os.PathLike),
                "a bool or a directory",
            ),
            ("data_axis", isinstance(self.data_axis, str), "a mesh axis name"),
            (
                "pbt",
                self.pbt is None or isinstance(self.pbt, _pbt_class()),
                "a purejaxppo.PBT or None",
            ),
            (
                "callbacks",
                all(callable(cb) for cb in self.callbacks),
                "a sequence of callables",
            ),
        )
        for name, ok, rule in rules:
            if not ok:
                raise ValueError(f"FitOptions.{name}={getattr(self, name)!r}: must be {rule}")

    @classmethod
    def build(cls, options: FitOptions | None = None, **overrides: Any) -> FitOptions:
        """`options` (default FitOptions()) with the keyword `overrides`, which must be
        FitOptions fields."""
        if options is not None and not isinstance(options, FitOptions):
            raise TypeError(f"fit: options={options!r}: must be a FitOptions (or None)")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TypeError(
                f"fit: unknown option(s) {', '.join(unknown)}; the options are the fields "
                f"of FitOptions: {', '.join(sorted(names))}"
            )
        base = options if options is not None else cls()
        return dataclasses.replace(base, **overrides) if overrides else base

    def replace(self, **changes: Any) -> FitOptions:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @property
    def keep(self) -> int | None:
        """keep_checkpoints as the Checkpointer takes it (None: keep all)."""
        return self.keep_checkpoints or None

    def saved(self, num_seeds: int) -> dict[str, Any]:
        """The options a checkpoint records (plain data), num_seeds resolved."""
        values = {name: getattr(self, name) for name in saved_option_names()}
        pbt = None if self.pbt is None else self.pbt.to_dict()
        return values | {"num_seeds": num_seeds, "pbt": pbt}


def _pbt_class() -> type:
    # Imported on use: the core (and gymnax, which starts JAX's backend) must not load
    # before the CLI's jax.distributed.initialize.
    from purejaxppo.core.population import PBT

    return PBT


def saved_option_names() -> tuple[str, ...]:
    """The FitOptions fields a checkpoint saves (a resumed run's defaults)."""
    return tuple(f.name for f in dataclasses.fields(FitOptions) if f.metadata.get("saved"))


def resume_defaults(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The FitOptions a checkpoint's meta recorded: {field: value} (fields missing from
    an older checkpoint are left out)."""
    runner = meta.get("runner", {})
    names = saved_option_names()
    return {k: v for k, v in runner.items() if k in names} | {"num_seeds": meta["num_seeds"]}
