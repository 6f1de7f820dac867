"""purejaxppo: end-to-end compiled PPO in JAX.

The package is laid out by layer (see the README's architecture section): `core/`,
`nn/` and `envs/` are pure and jittable; `acting/`, `scale/`, `runner/` and `io/`
are built on them; `config.py`, `presets.py` and `cli.py` sit on top.

The public names below are plain re-exports, imported on first use (PEP 562
`__getattr__`), for two reasons: `import purejaxppo` touches no accelerator, so a
multi-host program can call `purejaxppo.distributed.initialize(...)` first (gymnax,
which the environment adapters import, starts JAX's backend as soon as it is
imported); and `purejaxppo.train` loads only the pure core, never the host side.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

# MuJoCo (imported by Brax and MuJoCo Playground) picks its OpenGL backend when first
# imported; a headless Linux machine renders Playground videos only through EGL. The
# user's own MUJOCO_GL wins.
if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "Config": "purejaxppo.config",
    "compute_gae": "purejaxppo.core.advantages",
    "explained_variance": "purejaxppo.core.advantages",
    "RunningStats": "purejaxppo.core.normalize",
    "METRIC_NAMES": "purejaxppo.core.train",
    "init": "purejaxppo.core.train",
    "run_updates": "purejaxppo.core.train",
    "train": "purejaxppo.core.train",
    "update": "purejaxppo.core.train",
    "TrainOutput": "purejaxppo.core.types",
    "TrainState": "purejaxppo.core.types",
    "Transition": "purejaxppo.core.types",
    "Categorical": "purejaxppo.nn.distributions",
    "MultiCategorical": "purejaxppo.nn.distributions",
    "DiagGaussian": "purejaxppo.nn.distributions",
    "TanhGaussian": "purejaxppo.nn.distributions",
    "ActorCritic": "purejaxppo.nn.networks",
    "EvalResult": "purejaxppo.acting.policy",
    "evaluate": "purejaxppo.acting.policy",
    "make_policy": "purejaxppo.acting.policy",
    "Policy": "purejaxppo.acting.export",
    "load_policy": "purejaxppo.acting.export",
    "save_policy": "purejaxppo.acting.export",
    "export_onnx": "purejaxppo.acting.deploy",
    "export_stablehlo": "purejaxppo.acting.deploy",
    "load_stablehlo": "purejaxppo.acting.deploy",
    "render_episode": "purejaxppo.acting.render",
    "train_many": "purejaxppo.scale.mesh",
    "train_sharded": "purejaxppo.scale.mesh",
    "PBT": "purejaxppo.core.population",
    "Perturb": "purejaxppo.core.population",
    "Resample": "purejaxppo.core.population",
    "PopulationOutput": "purejaxppo.scale.population",
    "train_population": "purejaxppo.scale.population",
    "ChunkReport": "purejaxppo.runner.fit",
    "EvalHistory": "purejaxppo.runner.fit",
    "FitResult": "purejaxppo.runner.fit",
    "NonFiniteError": "purejaxppo.runner.fit",
    "InvalidMaskError": "purejaxppo.runner.results",
    "fit": "purejaxppo.runner.fit",
    "FitOptions": "purejaxppo.runner.options",
    "CheckpointError": "purejaxppo.io.checkpoints",
    "enable_compile_cache": "purejaxppo.io.cache",
}
# Public modules reachable under a short name: purejaxppo.distributed.initialize(...).
_MODULES = {"distributed": "purejaxppo.scale.distributed"}

__all__ = [
    "METRIC_NAMES",
    "PBT",
    "ActorCritic",
    "Categorical",
    "CheckpointError",
    "ChunkReport",
    "Config",
    "DiagGaussian",
    "EvalHistory",
    "EvalResult",
    "FitOptions",
    "FitResult",
    "InvalidMaskError",
    "MultiCategorical",
    "NonFiniteError",
    "Perturb",
    "Policy",
    "PopulationOutput",
    "Resample",
    "RunningStats",
    "TanhGaussian",
    "TrainOutput",
    "TrainState",
    "Transition",
    "compute_gae",
    "distributed",
    "enable_compile_cache",
    "evaluate",
    "explained_variance",
    "export_onnx",
    "export_stablehlo",
    "fit",
    "init",
    "load_policy",
    "load_stablehlo",
    "make_policy",
    "render_episode",
    "run_updates",
    "save_policy",
    "train",
    "train_many",
    "train_population",
    "train_sharded",
    "update",
]

if TYPE_CHECKING:  # what the lazy names are, for type checkers and IDEs
    from purejaxppo.acting.deploy import export_onnx, export_stablehlo, load_stablehlo
    from purejaxppo.acting.export import Policy, load_policy, save_policy
    from purejaxppo.acting.policy import EvalResult, evaluate, make_policy
    from purejaxppo.acting.render import render_episode
    from purejaxppo.config import Config
    from purejaxppo.core.advantages import compute_gae, explained_variance
    from purejaxppo.core.normalize import RunningStats
    from purejaxppo.core.population import PBT, Perturb, Resample
    from purejaxppo.core.train import METRIC_NAMES, init, run_updates, train, update
    from purejaxppo.core.types import TrainOutput, TrainState, Transition
    from purejaxppo.io.cache import enable_compile_cache
    from purejaxppo.io.checkpoints import CheckpointError
    from purejaxppo.nn.distributions import (
        Categorical,
        DiagGaussian,
        MultiCategorical,
        TanhGaussian,
    )
    from purejaxppo.nn.networks import ActorCritic
    from purejaxppo.runner.fit import ChunkReport, EvalHistory, FitResult, NonFiniteError, fit
    from purejaxppo.runner.options import FitOptions
    from purejaxppo.runner.results import InvalidMaskError
    from purejaxppo.scale import distributed
    from purejaxppo.scale.mesh import train_many, train_sharded
    from purejaxppo.scale.population import PopulationOutput, train_population


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    else:
        try:  # a subpackage or module: purejaxppo.presets, purejaxppo.envs, ...
            return importlib.import_module(f"purejaxppo.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"purejaxppo.{name}":
                raise  # it exists but needs something that is not installed
            raise AttributeError(f"module 'purejaxppo' has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
