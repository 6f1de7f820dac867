"""MuJoCo Playground behind the adapter protocol: `env="playground/<Name>"` (e.g.
"playground/CartpoleBalance") or any `mujoco_playground.MjxEnv` instance, unwrapped.

A Playground env has Brax's interface (`reset(rng) -> State`, `step(state, action)`,
`obs`, `reward`, `done`, `observation_size`, `action_size`), so it is stepped by the
Brax adapter's code: `done` (Playground sets it on a non-finite physics state) is a
termination, and the env's `episode_length` is our time limit, a truncation. Brax-style
training wrappers (`wrap_for_brax_training`) are refused: they fold the time limit into
`done` and drop the final observation at auto-reset.

Registry names load with `impl="jax"` (MJX's JAX implementation, which runs on CPU, GPU
and TPU); pass other config overrides through the class:
`Config(env=PlaygroundEnv("CartpoleBalance", impl="warp"))`. The DM Control Suite envs
carry their own assets; the locomotion and manipulation envs need the MuJoCo Menagerie,
which Playground clones from GitHub on first use (`registry.check_playground_id` says so
before anything is built when it is missing).

Episodes render through the env's own MuJoCo renderer (`render_frames`), headless with
`MUJOCO_GL=egl` (which `import purejaxppo` sets on Linux without a display, unless the
user chose a backend; MuJoCo reads it when first imported).
"""

from __future__ import annotations

import functools
import os
import warnings
from typing import Any
from unittest import mock

import jax
import numpy as np

from purejaxppo.envs.brax_adapter import (
    DEFAULT_EPISODE_LENGTH,
    BraxEnv,
    BraxParams,
    gl_context_hint,
)
from purejaxppo.envs.registry import PLAYGROUND_PREFIX, check_playground_id


class PlaygroundEnv(BraxEnv):
    """One Playground environment (unbatched), gymnax-style; actions in [-1, 1]^A."""

    def __init__(
        self,
        name: str | None = None,
        action_repeat: int = 1,
        *,
        mjx_env: Any = None,
        **config_overrides: Any,
    ):
        """A registered Playground env by name (loaded with `config_overrides`, default
        `impl="jax"`), or (`mjx_env`) any `MjxEnv` instance, e.g. a user's own."""
        if (name is None) == (mjx_env is None):
            raise TypeError(
                "PlaygroundEnv: pass exactly one of a registry name and mjx_env= "
                f"(got name={name!r}, mjx_env={mjx_env!r})"
            )
        if mjx_env is not None and config_overrides:
            raise TypeError(
                "PlaygroundEnv: config overrides apply to a registry name; "
                f"got mjx_env= with {sorted(config_overrides)}"
            )
        self.action_repeat = int(action_repeat)
        self.own_instance = mjx_env is not None
        self.config_overrides = tuple(sorted({"impl": "jax", **config_overrides}.items()))
        if self.own_instance:
            self.env_name = type(mjx_env).__name__
            self.brax_env = mjx_env
        else:
            check_playground_id(PLAYGROUND_PREFIX + name)
            self.env_name = name
            self.brax_env = _load(name, self.config_overrides)

    def _key(self):  # BraxEnv's __eq__ and __hash__ compare these (never a BraxEnv's)
        if self.own_instance:
            return (PlaygroundEnv, id(self.brax_env), self.action_repeat)
        return (PlaygroundEnv, self.env_name, self.config_overrides, self.action_repeat)

    def __repr__(self):
        if self.own_instance:
            return f"PlaygroundEnv(mjx_env={self.brax_env!r}, action_repeat={self.action_repeat})"
        overrides = "".join(f", {k}={v!r}" for k, v in self.config_overrides)
        return f"PlaygroundEnv({self.env_name!r}, action_repeat={self.action_repeat}{overrides})"

    @property
    def name(self) -> str:
        return self.env_name if self.own_instance else f"{PLAYGROUND_PREFIX}{self.env_name}"

    @property
    def episode_length(self) -> int:
        """The env's own episode length in agent steps (its config's `episode_length`,
        in control steps, divided by the action repeat)."""
        length = getattr(getattr(self.brax_env, "_config", None), "episode_length", None)
        length = DEFAULT_EPISODE_LENGTH if length is None else int(length)
        return max(1, length // self.action_repeat)

    @property
    def default_params(self) -> BraxParams:
        return BraxParams(max_steps_in_episode=self.episode_length)

    def render_frames(self, states: list[Any], height: int = 240, width: int = 320, camera=None):
        """RGB frames [T, H, W, 3] uint8 of our env states, by the env's own renderer."""
        inner = [s.inner for s in states]
        # without Playground's progress bar
        with mock.patch.dict(os.environ, {"TQDM_DISABLE": "1"}), gl_context_hint(self.name):
            frames = self.brax_env.render(inner, height=height, width=width, camera=camera)
        return np.stack([np.asarray(f, np.uint8) for f in frames])


@functools.cache
def _load(name: str, overrides: tuple[tuple[str, Any], ...]) -> Any:
    from mujoco_playground import registry

    # As for Brax: the env may first be loaded while `train` is traced, and its model
    # arrays must be concrete.
    with warnings.catch_warnings(), jax.ensure_compile_time_eval():
        warnings.simplefilter("ignore", UserWarning)
        return registry.load(name, config_overrides=dict(overrides))


@functools.cache
def make_playground_env(env_id: str, action_repeat: int = 1) -> PlaygroundEnv:
    """The PlaygroundEnv for "playground/<Name>" (checked by `check_playground_id`)."""
    return PlaygroundEnv(env_id[len(PLAYGROUND_PREFIX) :], action_repeat)


def wrap_playground_instance(env: Any, action_repeat: int = 1) -> PlaygroundEnv:
    """The PlaygroundEnv of a user's `MjxEnv` instance (checked unwrapped by
    `registry.check_playground_instance`)."""
    return PlaygroundEnv(mjx_env=env, action_repeat=action_repeat)
