"""purejaxppo: end-to-end compiled PPO in JAX.

The public names below are imported on first use. `import purejaxppo` itself touches
no accelerator, so a multi-host program can call
`purejaxppo.distributed.initialize(...)` first: gymnax, which every environment
adapter imports, starts JAX's backend as soon as it is imported.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "compute_gae": "advantages",
    "explained_variance": "advantages",
    "enable_compile_cache": "cache",
    "CheckpointError": "checkpoint",
    "Config": "config",
    "Categorical": "distributions",
    "DiagGaussian": "distributions",
    "TanhGaussian": "distributions",
    "Policy": "export",
    "load_policy": "export",
    "save_policy": "export",
    "ActorCritic": "networks",
    "RunningStats": "normalize",
    "train_many": "parallel",
    "train_sharded": "parallel",
    "EvalResult": "policy",
    "evaluate": "policy",
    "make_policy": "policy",
    "ChunkReport": "runner",
    "EvalHistory": "runner",
    "FitResult": "runner",
    "NonFiniteError": "runner",
    "fit": "runner",
    "METRIC_NAMES": "train",
    "init": "train",
    "run_updates": "train",
    "train": "train",
    "update": "train",
    "TrainOutput": "types",
    "TrainState": "types",
    "Transition": "types",
}
# Functions named like the module that defines them: `purejaxppo.train` is the
# function, whichever order the modules are imported in.
_SHADOWED = ("train", "update")

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"purejaxppo.{_EXPORTS[name]}"), name)
        if name not in _SHADOWED:
            globals()[name] = value
        return value
    try:
        return importlib.import_module(f"purejaxppo.{name}")  # a submodule: purejaxppo.presets
    except ModuleNotFoundError as e:
        if e.name != f"purejaxppo.{name}":
            raise  # the submodule exists but needs something missing
        raise AttributeError(f"module 'purejaxppo' has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def _shadowed(name: str) -> property:
    def get(module: types.ModuleType) -> Any:
        return getattr(importlib.import_module(f"purejaxppo.{name}"), name)

    def ignore(module: types.ModuleType, value: Any) -> None:
        # The import system sets the submodule as an attribute of the package after
        # loading it; the submodule stays reachable in sys.modules.
        pass

    return property(get, ignore)


class _Package(types.ModuleType):
    train = _shadowed("train")
    update = _shadowed("update")


sys.modules[__name__].__class__ = _Package
