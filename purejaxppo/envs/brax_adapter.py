"""Brax environments behind the gymnax `Environment` API: `env="brax/<name>"` or any
`brax.envs.Env` instance (a user's own PipelineEnv subclass, unwrapped).

The wrapper exposes Brax's raw, un-wrapped env: `step_env` advances one agent step
(`action_repeat` physics steps with the same action) and reports Brax's `done` as a
true termination; `is_truncated` applies the time limit. Auto-reset then happens in
our own vectorised step (`gymnax_adapter.step_envs`), which keeps the pre-reset
observation for bootstrapping a truncated episode (Brax's AutoResetWrapper replaces it
with the reset observation, and resets every episode to the same cached state) and
draws a fresh random initial state for every new episode.
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import spaces
from gymnax.environments.environment import Environment

from purejaxppo.envs.registry import (
    BRAX_ENVS,  # noqa: F401  (re-exported: the list of names lives in the registry)
    BRAX_PREFIX,
    GENERALIZED_ONLY,
    check_brax_id,
)

DEFAULT_EPISODE_LENGTH = 1000


@struct.dataclass
class BraxParams:
    max_steps_in_episode: int = DEFAULT_EPISODE_LENGTH


@struct.dataclass
class BraxEnvState:
    inner: Any  # brax.envs.base.State
    time: jax.Array  # int32: agent steps taken in this episode


class BraxEnv(Environment):
    """One Brax environment (unbatched), gymnax-style. Actions lie in [-1, 1]^A (Brax's
    convention: each env maps them to its actuators' control range)."""

    # Resetting builds a physics state: step_envs skips it on steps where no env ended.
    costly_reset = True

    def __init__(
        self, name: str, backend: str = "auto", action_repeat: int = 1, *, brax_env: Any = None
    ):
        """A registered Brax env by name, or (`brax_env`) any `brax.envs.Env` instance,
        e.g. a user's own PipelineEnv subclass, unwrapped."""
        super().__init__()
        self.action_repeat = int(action_repeat)
        self.own_instance = brax_env is not None
        if self.own_instance:
            _patch_brax_fluid_clip()
            self.env_name = name
            self.backend = str(getattr(brax_env, "backend", "custom"))
            self.brax_env = brax_env
            return
        if backend == "auto":
            backend = "generalized" if name in GENERALIZED_ONLY else "positional"
        self.env_name = name
        self.backend = backend
        self.brax_env = _brax_env(name, backend)

    # Hashable by what defines it, so configs naming the same env compare equal (a
    # user's instance: the same object).
    def __eq__(self, other):
        return isinstance(other, BraxEnv) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def _key(self):
        if self.own_instance:
            return (id(self.brax_env), self.action_repeat)
        return (self.env_name, self.backend, self.action_repeat)

    def __repr__(self):
        if self.own_instance:
            return f"BraxEnv({self.brax_env!r}, action_repeat={self.action_repeat})"
        return (
            f"BraxEnv({self.env_name!r}, backend={self.backend!r}, "
            f"action_repeat={self.action_repeat})"
        )

    @property
    def name(self) -> str:
        return self.env_name if self.own_instance else f"{BRAX_PREFIX}{self.env_name}"

    @property
    def default_params(self) -> BraxParams:
        return BraxParams()

    @property
    def fps(self) -> float:
        """Agent steps per second of simulated time (a video's frame rate)."""
        return 1.0 / (float(self.brax_env.dt) * self.action_repeat)

    def render_frames(self, states: list[Any], height: int = 240, width: int = 320, camera=None):
        """RGB frames [T, H, W, 3] uint8 of our env states, drawn offline by Brax's own
        image renderer (`brax.io.image.render_array`, MuJoCo's renderer on the system's
        MuJoCo model); headless Linux needs MUJOCO_GL=egl or osmesa."""
        from brax.io import image

        pipeline_states = [s.inner.pipeline_state for s in states]
        with gl_context_hint(self.name):
            frames = image.render_array(self.brax_env.sys, pipeline_states, height, width, camera)
        return np.stack([np.asarray(f, np.uint8) for f in frames])

    def reset_env(self, key: jax.Array, params: BraxParams):
        inner = self.brax_env.reset(raw_key(key))
        return inner.obs, BraxEnvState(inner=inner, time=jnp.zeros((), jnp.int32))

    def step_env(self, key: jax.Array, state: BraxEnvState, action: jax.Array, params):
        del key  # Brax dynamics are deterministic given the state

        def physics_step(carry, _):
            inner, total, done = carry
            nxt = self.brax_env.step(inner, action)
            # Once the episode has terminated inside the repeat, freeze it there.
            inner = jax.tree.map(lambda new, old: jnp.where(done, old, new), nxt, inner)
            total = total + jnp.where(done, 0.0, nxt.reward)
            return (inner, total, jnp.logical_or(done, nxt.done > 0.5)), None

        init = (state.inner, jnp.zeros((), jnp.float32), jnp.zeros((), bool))
        if self.action_repeat == 1:
            (inner, reward, terminated), _ = physics_step(init, None)
        else:
            (inner, reward, terminated), _ = jax.lax.scan(
                physics_step, init, None, length=self.action_repeat
            )
        new_state = BraxEnvState(inner=inner, time=state.time + 1)
        return inner.obs, new_state, reward, terminated, {}

    def action_space(self, params=None) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (self.brax_env.action_size,), jnp.float32)

    def observation_space(self, params=None) -> spaces.Box | spaces.Dict:
        """A Box, or a Dict of Boxes for a Brax env with dict observations (e.g.
        "state" and "privileged_state")."""
        size = self.brax_env.observation_size
        if isinstance(size, dict):
            return spaces.Dict(
                {k: spaces.Box(-jnp.inf, jnp.inf, tuple(v), jnp.float32) for k, v in size.items()}
            )
        return spaces.Box(-jnp.inf, jnp.inf, (size,), jnp.float32)


@contextlib.contextmanager
def gl_context_hint(name: str):
    """Turn MuJoCo's error for a missing OpenGL context into one that says what to set."""
    try:
        yield
    except Exception as err:  # MuJoCo raises its own FatalError without a GL context
        if "OpenGL" not in str(err) and "GL" not in type(err).__name__:
            raise
        raise RuntimeError(
            f"rendering {name} needs an OpenGL context: set MUJOCO_GL=egl (or osmesa) "
            f"before mujoco is first imported (MUJOCO_GL={os.environ.get('MUJOCO_GL')!r} "
            f"now): {err}"
        ) from err


def wrap_brax_instance(env: Any, action_repeat: int = 1) -> BraxEnv:
    """The BraxEnv of a user's `brax.envs.Env` instance (checked unwrapped by
    `registry.check_brax_instance`)."""
    return BraxEnv(type(env).__name__, action_repeat=action_repeat, brax_env=env)


def raw_key(key: jax.Array) -> jax.Array:
    """A uint32[2] key, as Brax and other libraries written before typed keys expect."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return key


class _ClipCompat:
    """`jax.numpy` as seen by Brax's fluid module, with the `a_min`/`a_max` keywords of
    `clip` that JAX 0.10 removed (Brax 0.14.2 still passes `a_min` there, which breaks
    every env with fluid forces, e.g. swimmer)."""

    def __init__(self, module):
        self._module = module

    def __getattr__(self, name):
        return getattr(self._module, name)

    def clip(self, x, a_min=None, a_max=None, **kwargs):
        kwargs.setdefault("min", a_min)
        kwargs.setdefault("max", a_max)
        return self._module.clip(x, **kwargs)


def _patch_brax_fluid_clip() -> None:
    import inspect

    from brax import fluid

    if "a_min" in inspect.signature(jnp.clip).parameters or isinstance(fluid.jp, _ClipCompat):
        return
    fluid.jp = _ClipCompat(fluid.jp)


@functools.cache
def _brax_env(name: str, backend: str):
    from brax import envs as brax_envs

    _patch_brax_fluid_clip()

    # The env is cached for the process, and the first call may come while `train` is
    # being traced (a Config no longer builds its env): its system arrays must be
    # concrete, never tracers that would leak out of that trace.
    with warnings.catch_warnings(), jax.ensure_compile_time_eval():
        # Brax warns on every model load that its own pipelines are unmaintained.
        warnings.simplefilter("ignore", UserWarning)
        return brax_envs.get_environment(name, backend=backend)


@functools.cache
def make_brax_env(env_id: str, backend: str = "auto", action_repeat: int = 1) -> BraxEnv:
    """The BraxEnv for "brax/<name>"; ValueError naming close matches for unknown names,
    ImportError with the install hint when brax is missing."""
    check_brax_id(env_id, backend)
    name = env_id[len(BRAX_PREFIX) :]
    return BraxEnv(name, backend, action_repeat)
