"""Environment adapters: one functional, vectorised API over gymnax-style envs."""

from purejaxppo.envs.gymnax_adapter import (
    EnvSpec,
    StepResult,
    env_spec,
    reset_envs,
    resolve_env,
    split_step_keys,
    step_envs,
)

__all__ = [
    "EnvSpec",
    "StepResult",
    "env_spec",
    "reset_envs",
    "resolve_env",
    "split_step_keys",
    "step_envs",
]
