"""Environment adapters: one functional, vectorised API over gymnax-style envs.

The names below are plain re-exports, imported on first use (PEP 562 `__getattr__`):
building a Config checks its env id in `envs.registry` without importing the adapters,
so naming a Brax env does not import gymnax or brax, and starts no accelerator backend.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_ADAPTER = "purejaxppo.envs.gymnax_adapter"
__all__ = [
    "EnvSpec",
    "StepResult",
    "env_spec",
    "reset_envs",
    "resolve_env",
    "split_step_keys",
    "step_envs",
]
_EXPORTS = dict.fromkeys(__all__, _ADAPTER)  # every public name comes from the gymnax adapter

if TYPE_CHECKING:
    from purejaxppo.envs.gymnax_adapter import (
        EnvSpec,
        StepResult,
        env_spec,
        reset_envs,
        resolve_env,
        split_step_keys,
        step_envs,
    )


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'purejaxppo.envs' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value
