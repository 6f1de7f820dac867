"""Environment adapters: one functional, vectorised API over gymnax-style envs.

The names below are plain re-exports, imported on first use (PEP 562 `__getattr__`):
building a Config checks its env id in `envs.registry` without importing the adapters,
so naming a Brax env does not import gymnax or brax, and starts no accelerator backend.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_ADAPTER = "purejaxppo.envs.gymnax_adapter"
_SPEC = "purejaxppo.envs.spec"
_SPACES = "purejaxppo.envs.spaces"
_POMDP = "purejaxppo.envs.pomdp"
_CHECK = "purejaxppo.envs.check"
_EXPORTS = {
    "EnvCheckError": _CHECK,
    "EnvCheckReport": _CHECK,
    "check_env": _CHECK,
    "EnvSpec": _SPEC,
    "ObsLeaf": _SPEC,
    "MultiDiscrete": _SPACES,
    "StatelessCartPole": _POMDP,
    "StepResult": _ADAPTER,
    "env_spec": _ADAPTER,
    "prepare_obs": _ADAPTER,
    "reset_envs": _ADAPTER,
    "resolve_env": _ADAPTER,
    "split_step_keys": _ADAPTER,
    "step_envs": _ADAPTER,
}
__all__ = [
    "EnvCheckError",
    "EnvCheckReport",
    "EnvSpec",
    "MultiDiscrete",
    "ObsLeaf",
    "StatelessCartPole",
    "StepResult",
    "check_env",
    "env_spec",
    "prepare_obs",
    "reset_envs",
    "resolve_env",
    "split_step_keys",
    "step_envs",
]

if TYPE_CHECKING:
    from purejaxppo.envs.check import EnvCheckError, EnvCheckReport, check_env
    from purejaxppo.envs.gymnax_adapter import (
        StepResult,
        env_spec,
        prepare_obs,
        reset_envs,
        resolve_env,
        split_step_keys,
        step_envs,
    )
    from purejaxppo.envs.pomdp import StatelessCartPole
    from purejaxppo.envs.spaces import MultiDiscrete
    from purejaxppo.envs.spec import EnvSpec, ObsLeaf


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'purejaxppo.envs' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value
