"""Opening a `fit` run: a fresh run directory (never one that holds a run) or a
resumed checkpoint (read and checked before anything is written), and `load_run`."""

from __future__ import annotations

import dataclasses
import datetime
import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np
import yaml

from purejaxppo.config import Config
from purejaxppo.core.types import TrainState
from purejaxppo.io import checkpoints as ckpt
from purejaxppo.runner.options import FitOptions
from purejaxppo.runner.program import abstract_run

# What a run directory written by fit holds; a fresh run refuses a folder with any.
RUN_FILES = ("config.yaml", "metrics.csv", "metrics.jsonl", ckpt.CHECKPOINT_DIR)


@dataclasses.dataclass(frozen=True)
class OpenedRun:
    """Where a run writes and what it continues from."""

    out: Path | None  # the run directory, on every process (None: no files)
    run_dir: Path | None  # the same on process 0, the one that writes; else None
    continuing: bool  # out is the resumed run's own directory
    reader: ckpt.Checkpointer | None  # the resumed run's checkpoints
    done: int  # updates completed at the starting point
    meta: dict[str, Any] | None  # the resumed checkpoint's meta
    num_seeds: int

    @property
    def last_checkpoint(self) -> str:
        """The guard's note on where to continue from."""
        if self.reader is not None and self.done in self.reader.steps():
            return f"last good checkpoint: {self.reader.directory / str(self.done)}"
        return "no checkpoint was written"


def require_new_run_dir(run_dir: Path) -> None:
    """Refuse to start a fresh run in a directory that already holds one."""
    found = [name for name in RUN_FILES if (run_dir / name).exists()]
    if found:
        raise ValueError(
            f"fit: out={str(run_dir)!r} already holds a run ({', '.join(found)}); continue "
            "it with resume=that directory (--resume), or choose a new directory"
        )


def open_run(config: Config, options: FitOptions) -> OpenedRun:
    """Decide the run directory and read (and check) the resumed checkpoint's meta;
    nothing is written yet."""
    resume_dir = None if options.resume is None else ckpt.checkpoint_dir(options.resume)
    out = options.out if options.out is not None or resume_dir is None else resume_dir.parent
    out = None if out is None else Path(out)
    run_dir = out if jax.process_index() == 0 else None
    continuing = (
        resume_dir is not None
        and out is not None
        and ckpt.checkpoint_dir(out).resolve() == resume_dir.resolve()
    )
    if run_dir is not None and not continuing:
        require_new_run_dir(run_dir)
    if resume_dir is None:
        return OpenedRun(out, run_dir, False, None, 0, None, options.num_seeds or 1)
    reader = ckpt.Checkpointer(resume_dir, keep=options.keep, create=False)
    done, meta = reader.read_meta(options.resume_step)
    num_seeds = check_resumable(config, options, meta, reader.directory / str(done))
    return OpenedRun(out, run_dir, continuing, reader, done, meta, num_seeds)


def check_resumable(config: Config, options: FitOptions, meta: dict[str, Any], where: Path) -> int:
    """Raise unless the checkpoint `where` continues with this config and these
    options; returns the number of seeds (the checkpoint's unless given)."""
    mismatch = [
        m
        for m in ckpt.config_mismatch(meta["static"], config)
        if not m.startswith("total_timesteps ")
    ]
    check_budget(config, meta, where)
    if mismatch:
        raise ckpt.CheckpointError(
            f"cannot resume {where}: it was written by a config with different static "
            f"fields: {'; '.join(mismatch)}"
        )
    num_seeds = options.num_seeds or meta["num_seeds"]
    layout = {"num_seeds": num_seeds, "batch_shape": list(config.batch_shape)}
    saved_layout = {k: meta[k] for k in layout}
    if saved_layout != layout:
        raise ckpt.CheckpointError(
            f"cannot resume {where}: it holds runs {saved_layout}, this call asks for {layout}"
        )
    if meta["eval_count"] and options.eval_every:
        for name in ("eval_episodes", "eval_deterministic"):
            saved, now = meta["runner"][name], getattr(options, name)
            if saved != now:
                raise ValueError(
                    f"fit: {name}={now!r} but the resumed run's evaluations used "
                    f"{saved!r}; keep it the same so the history is one series"
                )
    now = None if options.pbt is None else options.pbt.to_dict()
    if now != meta["runner"].get("pbt"):
        raise ckpt.CheckpointError(
            f"cannot resume {where}: it was trained with pbt={meta['runner'].get('pbt')}, "
            f"this call asks for pbt={now}; a population's PBT settings are part of its run"
        )
    changed = ckpt.traced_changes(meta.get("config"), config)
    if changed:
        print(
            f"resume: hyperparameters changed since the checkpoint: {', '.join(changed)}",
            file=sys.stderr,
        )
    return num_seeds


def check_budget(config: Config, meta: dict[str, Any], where: Path) -> None:
    """A resumed run may continue to another total_timesteps (SB3's
    learn(reset_num_timesteps=False)), as long as it covers the updates already done.
    Schedules that depend on the run's length (linear and cosine lr and entropy
    coefficient, the linear clip range) follow the new length from the resumed update
    on: they are stretched, not restarted."""
    saved = int(meta["static"]["total_timesteps"])
    if saved == config.total_timesteps:
        return
    done = meta["update"]
    if config.num_updates < done:
        raise ckpt.CheckpointError(
            f"cannot resume {where}: Config.total_timesteps={config.total_timesteps} gives "
            f"{config.num_updates} updates, but the checkpoint has already done {done}"
        )
    print(
        f"resume: total_timesteps {saved} -> {config.total_timesteps}: continuing from "
        f"update {done} to {config.num_updates}; length-dependent schedules follow the new "
        "length from here on",
        file=sys.stderr,
    )


def checkpoint_template(
    abstract_state: Any, abstract_metrics: dict[str, Any], meta: dict[str, Any]
) -> dict[str, Any]:
    """Shapes and dtypes of a checkpoint's arrays, from the run layout and its meta."""
    done, n_eval = meta["update"], meta["eval_count"]
    template: dict[str, Any] = {
        "state": abstract_state,
        "metrics": {
            k: jax.ShapeDtypeStruct((*v.shape[:-1], done), v.dtype)
            for k, v in abstract_metrics.items()
        },
    }
    if n_eval:
        shape = (*abstract_state.update_step.shape, n_eval, meta["runner"]["eval_episodes"])
        template["eval"] = {
            "updates": jax.ShapeDtypeStruct((n_eval,), np.int32),
            "returns": jax.ShapeDtypeStruct(shape, np.float32),
            "lengths": jax.ShapeDtypeStruct(shape, np.int32),
        }
    return template


def read_checkpoint(opened: OpenedRun, config: Config, pbt: Any = None) -> ckpt.Restored | None:
    """The resumed checkpoint's arrays (checksum verified), or None for a fresh run."""
    if opened.meta is None:
        return None
    template = checkpoint_template(*abstract_run(config, opened.num_seeds, pbt), opened.meta)
    return opened.reader.restore(template, opened.done)


def set_aside_newer_checkpoints(checkpointer: ckpt.Checkpointer, update: int) -> None:
    """Resuming from an older checkpoint: move the newer ones (from the abandoned
    continuation) out of the way, never deleting them."""
    newer = [s for s in checkpointer.steps() if s > update]
    if not newer:
        return
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    aside = checkpointer.directory.parent / f"{ckpt.CHECKPOINT_DIR}-after-{update}-{stamp}"
    aside.mkdir(parents=True)
    for step in newer:
        (checkpointer.directory / str(step)).rename(aside / str(step))
    checkpointer.reload()
    print(
        f"resume: continuing from update {update}; the newer checkpoints {newer} were "
        f"moved to {aside}",
        file=sys.stderr,
    )


def prepare_run_dir(
    opened: OpenedRun, plain: dict[str, Any] | None, options: FitOptions
) -> ckpt.Checkpointer | None:
    """Create the run directory (process 0) with its config.yaml; returns the
    checkpointer that writes there (None where this process writes nothing)."""
    run_dir = opened.run_dir
    if run_dir is None:
        return None
    if opened.continuing:
        set_aside_newer_checkpoints(opened.reader, opened.done)
    run_dir.mkdir(parents=True, exist_ok=True)
    if plain is not None:
        (run_dir / "config.yaml").write_text(yaml.safe_dump(plain, sort_keys=False))
    if opened.continuing:
        return opened.reader
    return ckpt.Checkpointer(ckpt.checkpoint_dir(run_dir), keep=options.keep, create=True)


@dataclasses.dataclass(frozen=True)
class LoadedRun:
    """A run read back from a checkpoint by `load_run`."""

    config: Config  # batched for a sweep
    state: TrainState  # leading axes [*config.batch_shape, num_seeds (if > 1)]
    num_seeds: int
    update: int  # updates completed at the checkpoint
    metrics: dict[str, np.ndarray]
    path: Path


def saved_pbt(meta: dict[str, Any]) -> Any:
    """The PBT a checkpoint's run was trained with, or None."""
    saved = meta.get("runner", {}).get("pbt")
    if saved is None:
        return None
    from purejaxppo.core.population import PBT

    return PBT.from_dict(saved)


def load_run(path: str | Path, step: int | None = None) -> LoadedRun:
    """Read the latest (or `step`) checkpoint of a run directory written by `fit`.

    The checkpoint's own config is used, so it must have a plain-data form (a
    registered env id); the arrays are verified against their checksum."""
    checkpointer = ckpt.Checkpointer(ckpt.checkpoint_dir(path), keep=None, create=False)
    update, meta = checkpointer.read_meta(step)
    if meta.get("config") is None:
        raise ckpt.CheckpointError(
            f"checkpoint {checkpointer.directory / str(update)} was written with a config "
            "holding Python objects (an Environment instance); resume it from Python with "
            "fit(config, resume=...)"
        )
    config = Config.from_dict(meta["config"])
    num_seeds = meta["num_seeds"]
    state, metrics = abstract_run(config, num_seeds, saved_pbt(meta))
    restored = checkpointer.restore(checkpoint_template(state, metrics, meta), update)
    return LoadedRun(
        config=config,
        state=jax.device_put(restored.arrays["state"]),
        num_seeds=num_seeds,
        update=update,
        metrics=restored.arrays["metrics"],
        path=restored.path,
    )
