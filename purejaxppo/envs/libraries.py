"""Jumanji, XLand-MiniGrid and Craftax behind the adapter protocol (gymnax's API).

Each library signals an episode's end its own way, which is where trainers get
truncation wrong; every adapter here steps the library's env *without* its own
auto-reset (the adapter's `step_envs` resets and keeps the final observation) and
reports a true terminal state as `terminated` and any time limit as a truncation:

- Jumanji (`env="jumanji/<id>"`, e.g. "jumanji/Game2048-v1"): a LAST `TimeStep` with
  discount 0 is a termination, with discount > 0 a truncation. Some envs (Snake,
  Maze) end at their `time_limit` through a termination; where the env has a
  `time_limit` and its observation a `step_count`, reaching the limit is a
  truncation. Observations (NamedTuples) become flat dicts, nested fields joined
  with "_"; the "action_mask" field masks the policy.
- XLand-MiniGrid (`env="xminigrid/<id>"`, e.g. "xminigrid/MiniGrid-Empty-6x6"): LAST
  with discount 0 is a termination, with discount 1 (the step limit) a truncation.
  Its [V, V, 2] observation holds tile and colour ids (categories, not pixels): the
  adapter one-hot encodes them to float32 [V, V, 13 + 12].
- Craftax (`env="craftax/<id>"`, e.g. "craftax/Craftax-Classic-Symbolic-v1"): its
  `done` includes the step limit; an end where the game is not over otherwise
  (alive, not in lava, boss not beaten) is a truncation.

`Config.episode_length` (`max_steps_in_episode`) adds our own time limit on top
(default: the library's own, so the two coincide). Construct an adapter directly to
pass the library's constructor arguments: `Config(env=JumanjiEnv("Snake-v1",
num_rows=6, num_cols=6))`.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import spaces
from gymnax.environments.environment import Environment

from purejaxppo.envs.brax_adapter import raw_key
from purejaxppo.envs.spaces import MultiDiscrete

NO_LIMIT = 2**31 - 1  # a library env without a time limit


@struct.dataclass
class LibraryParams:
    max_steps_in_episode: int = NO_LIMIT
    inner: Any = None  # the library's own params pytree (Craftax), or None


@struct.dataclass
class LibraryState:
    inner: Any  # the library's state (or TimeStep)
    time: jax.Array  # int32 agent steps in this episode
    library_truncated: jax.Array  # the library ended the episode at its own limit


class LibraryEnv(Environment):
    """Shared plumbing: identity by (class, id, kwargs), the time limit, the step."""

    library = ""
    # Resetting builds a level (Craftax's world generation, XLand-MiniGrid's rulesets):
    # step_envs computes it only on steps where some env ended.
    costly_reset = True

    def __init__(self, env_id: str, **kwargs: Any):
        super().__init__()
        self.env_id = env_id
        self.kwargs = tuple(sorted(kwargs.items()))
        self.inner = self._make()

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple:
        return (self.env_id, self.kwargs)

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self.kwargs)
        return f"{type(self).__name__}({self.env_id!r}{args})"

    @property
    def name(self) -> str:
        return f"{self.library}/{self.env_id}"

    @property
    def default_params(self) -> LibraryParams:
        return LibraryParams(max_steps_in_episode=self._time_limit(), inner=self._inner_params())

    def is_truncated(self, state: LibraryState, params: LibraryParams) -> jax.Array:
        return jnp.logical_or(state.time >= params.max_steps_in_episode, state.library_truncated)

    def reset_env(self, key: jax.Array, params: LibraryParams):
        obs, inner = self._reset(key, params.inner)
        false = jnp.zeros((), bool)
        return obs, LibraryState(inner, jnp.zeros((), jnp.int32), false)

    def step_env(self, key: jax.Array, state: LibraryState, action: jax.Array, params):
        obs, inner, reward, terminated, truncated = self._step(
            key, state.inner, action, params.inner
        )
        terminated = jnp.asarray(terminated, bool)
        truncated = jnp.logical_and(jnp.asarray(truncated, bool), jnp.logical_not(terminated))
        new_state = LibraryState(inner, state.time + 1, truncated)
        return obs, new_state, jnp.asarray(reward, jnp.float32), terminated, {}

    def observation_space(self, params: LibraryParams | None = None) -> Any:
        """Boxes shaped and typed like the observation this adapter returns."""
        params = self.default_params if params is None else params
        shapes = jax.eval_shape(lambda k: self.reset_env(k, params)[0], jax.random.key(0))

        def box(x):
            return spaces.Box(-jnp.inf, jnp.inf, tuple(x.shape), x.dtype)

        if isinstance(shapes, dict):
            return spaces.Dict({k: box(v) for k, v in shapes.items()})
        return box(shapes)

    # -- what each library provides --------------------------------------------------
    def _make(self) -> Any:
        raise NotImplementedError

    def _time_limit(self) -> int:
        return NO_LIMIT

    def _inner_params(self) -> Any:
        return None

    def _reset(self, key, inner_params) -> tuple[Any, Any]:
        raise NotImplementedError

    def _step(self, key, inner, action, inner_params) -> tuple:
        """(obs, inner, reward, terminated, library truncated)."""
        raise NotImplementedError


def _compile_time(make):
    """Build a library env outside any trace (its constructor's arrays must be
    concrete: the adapter may first be built while `train` is traced)."""

    @functools.wraps(make)
    def wrapper(*args, **kwargs):
        with jax.ensure_compile_time_eval():
            return make(*args, **kwargs)

    return wrapper


# ---- Jumanji ---------------------------------------------------------------------


def flat_obs(obs: Any, prefix: str = "") -> dict[str, jax.Array]:
    """A (nested) NamedTuple or dict observation as a flat dict of arrays."""
    items = obs._asdict().items() if hasattr(obs, "_asdict") else dict(obs).items()
    out: dict[str, jax.Array] = {}
    for key, value in items:
        name = f"{prefix}{key}"
        if hasattr(value, "_asdict") or isinstance(value, dict):
            out.update(flat_obs(value, f"{name}_"))
        else:
            out[name] = jnp.asarray(value)
    return out


class JumanjiEnv(LibraryEnv):
    library = "jumanji"

    @_compile_time
    def _make(self) -> Any:
        import jumanji

        return jumanji.make(self.env_id, **dict(self.kwargs))

    def _time_limit(self) -> int:
        limit = getattr(self.inner, "time_limit", None)
        return NO_LIMIT if limit is None else int(limit)

    def _reset(self, key, inner_params):
        state, timestep = self.inner.reset(raw_key(key))
        return flat_obs(timestep.observation), state

    def _step(self, key, inner, action, inner_params):
        state, ts = self.inner.step(inner, action)
        last = ts.step_type == 2  # jumanji.types.StepType.LAST
        terminated = jnp.logical_and(last, ts.discount == 0)
        truncated = jnp.logical_and(last, ts.discount > 0)
        obs = flat_obs(ts.observation)
        limit = getattr(self.inner, "time_limit", None)
        if limit is not None and "step_count" in obs:  # Snake, Maze: the limit terminates
            at_limit = jnp.logical_and(last, obs["step_count"] >= limit)
            terminated = jnp.logical_and(terminated, jnp.logical_not(at_limit))
            truncated = jnp.logical_or(truncated, at_limit)
        return obs, state, jnp.asarray(ts.reward, jnp.float32), terminated, truncated

    def action_space(self, params: Any = None) -> Any:
        spec = self.inner.action_spec
        spec = spec() if callable(spec) else spec
        name = type(spec).__name__
        if name == "DiscreteArray":
            return spaces.Discrete(int(spec.num_values))
        if name == "MultiDiscreteArray":
            return MultiDiscrete(tuple(int(n) for n in np.ravel(spec.num_values)))
        low, high = (
            np.broadcast_to(spec.minimum, spec.shape),
            np.broadcast_to(spec.maximum, spec.shape),
        )
        return spaces.Box(low, high, tuple(spec.shape), jnp.float32)


# ---- XLand-MiniGrid ------------------------------------------------------------------


class XMiniGridEnv(LibraryEnv):
    library = "xminigrid"
    TILES, COLOURS = 13, 12  # xminigrid.core.constants NUM_TILES, NUM_COLORS

    @_compile_time
    def _make(self) -> Any:
        import xminigrid

        env, self.xparams = xminigrid.make(self.env_id, **dict(self.kwargs))
        return env

    def _time_limit(self) -> int:
        return int(self.xparams.max_steps)

    def _one_hot(self, obs: jax.Array) -> jax.Array:
        tiles = jax.nn.one_hot(obs[..., 0], self.TILES, dtype=jnp.float32)
        colours = jax.nn.one_hot(obs[..., 1], self.COLOURS, dtype=jnp.float32)
        return jnp.concatenate([tiles, colours], axis=-1)

    def _reset(self, key, inner_params):
        timestep = self.inner.reset(self.xparams, key)
        return self._one_hot(timestep.observation), timestep

    def _step(self, key, inner, action, inner_params):
        ts = self.inner.step(self.xparams, inner, action)
        last = ts.step_type == 2  # xminigrid.types.StepType.LAST
        terminated = jnp.logical_and(last, ts.discount == 0)
        truncated = jnp.logical_and(last, ts.discount > 0)
        return self._one_hot(ts.observation), ts, ts.reward, terminated, truncated

    def action_space(self, params: Any = None) -> spaces.Discrete:
        return spaces.Discrete(int(self.inner.num_actions(self.xparams)))


# ---- Craftax -----------------------------------------------------------------------


class CraftaxEnv(LibraryEnv):
    library = "craftax"

    @_compile_time
    def _make(self) -> Any:
        from craftax.craftax_env import make_craftax_env_from_name

        if self.kwargs:
            raise ValueError(
                f"CraftaxEnv({self.env_id!r}): takes no constructor arguments, got "
                f"{dict(self.kwargs)}; set the time limit with Config.episode_length"
            )
        return make_craftax_env_from_name(self.env_id, auto_reset=False)

    def _inner_params(self) -> Any:
        return self.inner.default_params

    def _time_limit(self) -> int:
        return int(self.inner.default_params.max_timesteps)

    def _reset(self, key, inner_params):
        return self.inner.reset_env(key, inner_params)

    def _step(self, key, inner, action, inner_params):
        obs, state, reward, done, _ = self.inner.step_env(key, inner, action, inner_params)
        # Over for a reason other than time: the same test with the clock at zero.
        fresh = state.replace(timestep=jnp.zeros_like(state.timestep))
        over = jnp.asarray(self.inner.is_terminal(fresh, inner_params), bool)
        done = jnp.asarray(done, bool)
        return obs, state, reward, over, jnp.logical_and(done, jnp.logical_not(over))

    def action_space(self, params: Any = None) -> spaces.Discrete:
        return spaces.Discrete(int(self.inner.action_space(self.inner.default_params).n))


LIBRARIES = {"jumanji": JumanjiEnv, "xminigrid": XMiniGridEnv, "craftax": CraftaxEnv}


@functools.cache
def make_library_env(env_id: str) -> LibraryEnv:
    """The adapter for "<library>/<id>" (checked by `registry.check_library_id`)."""
    library, name = env_id.split("/", 1)
    return LIBRARIES[library](name)


# ---- gymnax before 1.0 -------------------------------------------------------------


class LegacyGymnaxEnv(Environment):
    """An env written against gymnax's API before 1.0: `step_env` returns `(obs,
    state, reward, done, info)` with the time limit folded into `done` (its
    `is_terminal` checks `state.time >= params.max_steps_in_episode`), and its `step`
    returns five values with no final observation. The adapter steps `step_env` and
    splits `done`: an end at the time limit is a truncation, any other a termination.
    Needs `state.time` and `params.max_steps_in_episode`, which every gymnax env had.

        Config(env=LegacyGymnaxEnv(MyOldEnv()))
    """

    def __init__(self, env: Any):
        super().__init__()
        for method in ("reset_env", "step_env", "action_space", "default_params"):
            if not hasattr(env, method):
                raise TypeError(f"LegacyGymnaxEnv({env!r}): the env has no {method}")
        self.env = env

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LegacyGymnaxEnv) and self.env == other.env

    def __hash__(self) -> int:
        return hash((LegacyGymnaxEnv, self.env))

    def __repr__(self) -> str:
        return f"LegacyGymnaxEnv({self.env!r})"

    @property
    def name(self) -> str:
        return getattr(self.env, "name", type(self.env).__name__)

    @property
    def default_params(self) -> Any:
        return self.env.default_params

    def reset_env(self, key: jax.Array, params: Any):
        return self.env.reset_env(key, params)

    def step_env(self, key: jax.Array, state: Any, action: jax.Array, params: Any):
        obs, state, reward, done, info = self.env.step_env(key, state, action, params)
        at_limit = state.time >= params.max_steps_in_episode
        terminated = jnp.logical_and(jnp.asarray(done, bool), jnp.logical_not(at_limit))
        return obs, state, reward, terminated, info

    def action_space(self, params: Any = None) -> Any:
        return self.env.action_space(params)

    def observation_space(self, params: Any) -> Any:
        return self.env.observation_space(params)
