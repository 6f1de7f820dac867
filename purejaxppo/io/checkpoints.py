"""Checkpoints of a training run, written with orbax.

A checkpoint is one orbax step directory `<run_dir>/checkpoints/<update>/` holding
two items, written together and atomically (orbax writes a temporary directory and
renames it when complete, so a run killed mid-save leaves no step directory that
looks finished):

- `arrays`: the full runner state as arrays: the `TrainState` of every run (params,
  optimizer state, normaliser and reward-scaling state, env state, RNG key, update
  counter, KL coefficient, learning rate, episode statistics), the per-update
  metrics so far and the evaluation history;
- `meta`: JSON: the config (`Config.to_dict()`), the static fields as text (for the
  mismatch check, also for configs holding Python objects), the run layout
  (seeds, batch shape), the update count, and a SHA-256 of every array.

Restoring verifies the checksum, so a damaged checkpoint is an error, never
silently used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo.config import TRACED_FIELDS, Config

FORMAT_VERSION = 1
CHECKPOINT_DIR = "checkpoints"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, damaged, or belongs to a different run."""


@dataclasses.dataclass(frozen=True)
class Restored:
    """A checkpoint read back: host arrays (typed PRNG keys restored) and its meta."""

    update: int
    path: Path
    arrays: dict[str, Any]  # {"state": TrainState, "metrics": {...}, "eval": {...}}
    meta: dict[str, Any]


def checkpoint_dir(path: str | Path) -> Path:
    """The checkpoints folder of a run directory (`path` itself if it is that folder)."""
    path = Path(path)
    return path if path.name == CHECKPOINT_DIR else path / CHECKPOINT_DIR


def _stable_repr(value: Any) -> str:
    """repr without memory addresses (an env object's default repr has one)."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(value))


def static_fields_text(config: Config) -> dict[str, str]:
    """{static field: repr} for the mismatch check; repr also covers env objects."""
    return {
        f.name: _stable_repr(getattr(config, f.name))
        for f in dataclasses.fields(Config)
        if f.name not in TRACED_FIELDS
    } | {
        # None switches an optional traced feature off: a different program.
        f"{name} is None": repr(getattr(config, name) is None)
        for name in TRACED_FIELDS
        if name == "target_kl"
    }


def plain_config(config: Config) -> dict[str, Any] | None:
    """`config.to_dict()`, or None when the config holds a Python object."""
    try:
        return config.to_dict()
    except ValueError:
        return None


def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_host(tree: Any) -> Any:
    """Host numpy copy; typed keys become their uint32 key data."""
    return jax.tree.map(
        lambda x: np.asarray(jax.random.key_data(x) if _is_key(x) else jax.device_get(x)), tree
    )


def _checksum(tree: Any) -> str:
    digest = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        arr = np.ascontiguousarray(leaf)
        digest.update(jax.tree_util.keystr(path).encode())
        digest.update(f"{arr.dtype.str}{arr.shape}".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def _manager(directory: Path, keep: int | None, create: bool):
    import orbax.checkpoint as ocp

    me = jax.process_index()
    if create:
        directory.mkdir(parents=True, exist_ok=True)
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep,
        create=False,
        # Synchronous: the save is complete (and renamed into place) when save returns,
        # so "the last checkpoint" printed by the runner really exists.
        enable_async_checkpointing=False,
        # Checkpoints hold host arrays that this process writes (process 0) or reads
        # (every process on resume) on its own: no barriers with other processes.
        multiprocessing_options=ocp.options.MultiprocessingOptions(
            primary_host=me, active_processes={me}
        ),
    )
    return ocp.CheckpointManager(directory.absolute(), options=options)


class Checkpointer:
    """Saves and restores runner checkpoints under `directory`, keeping the last `keep`."""

    def __init__(self, directory: str | Path, keep: int | None = 3, create: bool = True):
        if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
            raise ValueError(f"keep_checkpoints={keep!r}: must be a positive integer or None")
        self.directory = Path(directory)
        if not create and not self.directory.is_dir():
            raise CheckpointError(f"no checkpoints found: {self.directory} does not exist")
        self._manager = _manager(self.directory, keep, create)

    def reload(self) -> None:
        """Re-read the directory (after checkpoints were moved by hand)."""
        self._manager.reload()

    def steps(self) -> list[int]:
        """Updates of the complete checkpoints, oldest first (temporary, half-written
        directories are never listed)."""
        return sorted(self._manager.all_steps())

    def save(self, update: int, arrays: dict[str, Any], meta: dict[str, Any]) -> Path:
        """Write one checkpoint; returns its directory."""
        import orbax.checkpoint as ocp

        host = _to_host(arrays)
        meta = {
            **meta,
            "format": FORMAT_VERSION,
            "update": int(update),
            "checksum": _checksum(host),
        }
        self._manager.save(
            int(update),
            args=ocp.args.Composite(
                arrays=ocp.args.StandardSave(host), meta=ocp.args.JsonSave(meta)
            ),
            force=True,
        )
        self._manager.wait_until_finished()
        return self.directory / str(int(update))

    def read_meta(self, update: int | None = None) -> tuple[int, dict[str, Any]]:
        """(update, meta) of a checkpoint (default: the latest complete one)."""
        update = self._pick(update)
        path = self.directory / str(update) / "meta" / "metadata"
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise CheckpointError(
                f"checkpoint {self.directory / str(update)} is damaged: its meta file "
                f"{path} cannot be read ({e}); {self._others(update)}"
            ) from None
        if meta.get("format") != FORMAT_VERSION:
            raise CheckpointError(
                f"checkpoint {self.directory / str(update)} has format "
                f"{meta.get('format')!r}; this purejaxppo reads format {FORMAT_VERSION}"
            )
        return update, meta

    def restore(self, template: dict[str, Any], update: int | None = None) -> Restored:
        """Read a checkpoint into the structure of `template` (arrays or
        ShapeDtypeStructs, typed keys allowed) and verify its checksum."""
        import orbax.checkpoint as ocp

        update, meta = self.read_meta(update)
        where = self.directory / str(update)

        # Host (numpy) templates: restored as numpy arrays, on no device, so that every
        # process of a multi-host run can read the checkpoint by itself.
        def host_template(x):
            shape = jax.eval_shape(jax.random.key_data, x) if _is_key(x) else x
            return np.zeros(np.shape(shape), shape.dtype)

        abstract = jax.tree.map(host_template, template)
        try:
            restored = self._manager.restore(
                update,
                args=ocp.args.Composite(arrays=ocp.args.StandardRestore(abstract)),
            )
            host = _to_host(restored.arrays)
        except Exception as e:  # orbax/tensorstore raise many kinds for damaged files
            raise CheckpointError(
                f"checkpoint {where} is damaged or does not match this run's arrays and "
                f"cannot be read ({type(e).__name__}: {str(e)[:300]}); "
                f"{self._others(update)}"
            ) from None
        if _checksum(host) != meta.get("checksum"):
            raise CheckpointError(
                f"checkpoint {where} is damaged: its arrays do not match the checksum "
                f"written with them; {self._others(update)}"
            )
        arrays = jax.tree.map(
            lambda t, x: jax.random.wrap_key_data(x) if _is_key(t) else x, template, host
        )
        return Restored(update=update, path=where, arrays=arrays, meta=meta)

    def _pick(self, update: int | None) -> int:
        steps = self.steps()
        if not steps:
            raise CheckpointError(f"no complete checkpoint in {self.directory}")
        if update is None:
            return steps[-1]
        if update not in steps:
            raise CheckpointError(
                f"resume_step={update}: no complete checkpoint at that update in "
                f"{self.directory} (available: {steps})"
            )
        return update

    def _others(self, update: int) -> str:
        older = [s for s in self.steps() if s != update]
        if not older:
            return "there is no other checkpoint to resume from"
        return (
            f"other checkpoints: updates {older} (resume one with resume_step=N, "
            "--resume-step N on the command line)"
        )


def config_mismatch(saved: dict[str, str], config: Config) -> list[str]:
    """Human-readable differences between a checkpoint's static fields and `config`'s."""
    now = static_fields_text(config)
    return [
        f"{name} (checkpoint {saved.get(name, '<absent>')}, now {now.get(name, '<absent>')})"
        for name in sorted(set(saved) | set(now))
        if saved.get(name) != now.get(name)
    ]


def traced_changes(saved: dict[str, Any] | None, config: Config) -> list[str]:
    """Traced hyperparameters whose values differ from the checkpoint's config."""
    if saved is None:
        return []
    now = plain_config(config) or {}
    return [
        f"{name} ({saved.get(name)} -> {now.get(name)})"
        for name in TRACED_FIELDS
        if name in now and saved.get(name) != now.get(name)
    ]
