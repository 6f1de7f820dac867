"""Vectorised adapter over the gymnax >= 1.0 `Environment` API.

gymnax's `step` auto-resets and reports `terminated`, `truncated` and the
pre-reset observation (`info["final_observation"]`); this adapter batches it
over envs, stores observations as the spec's leaves (`envs.spec`: vectors flattened,
images kept, the legal-action mask) and clips continuous actions to their bounds
at the env boundary only (the learner keeps the unclipped sample). An env may
provide its legal-action mask as the observation key "action_mask" or through an
`action_mask(state, params)` method.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any, NamedTuple

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces
from gymnax.environments.environment import Environment

from purejaxppo.envs.brax_adapter import make_brax_env, wrap_brax_instance
from purejaxppo.envs.registry import (
    OWN_ENVS,
    PROBE_PREFIX,
    check_env_id,
    is_brax_id,
    is_brax_instance,
    is_own_id,
    is_playground_id,
    is_playground_instance,
    is_probe_id,
    library_prefix,
)
from purejaxppo.envs.spec import MASK_KEY, SINGLE_KEY, EnvSpec, ObsLeaf, obs_leaves


class StepResult(NamedTuple):
    """One vectorised step. Leading axis B (envs) on every field."""

    obs: Any  # [B, obs_dim] (or the spec's leaves) observation after auto-reset
    env_state: Any
    reward: jax.Array  # [B] float32
    terminated: jax.Array  # [B] bool: a true terminal state (no bootstrap)
    truncated: jax.Array  # [B] bool: cut by a time limit (bootstrap from final_obs)
    final_obs: Any  # like obs: the observation before auto-reset (true next state)


@functools.cache
def _make_registered(name: str):
    # Cached for the process and possibly first built while `train` is traced: any
    # array the constructor makes must be concrete, not a tracer of that trace.
    with jax.ensure_compile_time_eval():
        return gymnax.make(name)


@functools.cache
def _make_own(name: str):
    """(instance, default params) of one of purejaxppo's own ids (`OWN_ENVS`), cached
    like `_make_registered`."""
    module, cls = OWN_ENVS[name]
    with jax.ensure_compile_time_eval():
        instance = getattr(importlib.import_module(module), cls)()
        return instance, instance.default_params


def resolve_env(
    env: Any,
    env_params: Any = None,
    *,
    episode_length: int | None = None,
    action_repeat: int = 1,
    brax_backend: str = "auto",
) -> tuple[Any, Any]:
    """(env instance, params) from a registered gymnax id, one of purejaxppo's own ids
    (`registry.OWN_ENVS`, e.g. "StatelessCartPole-v1"), "brax/<name>", "probe/<name>",
    "jumanji/<id>", "xminigrid/<id>", "craftax/<id>", "playground/<Name>", a
    `brax.envs.Env` or Playground `MjxEnv` instance, or a gymnax Environment instance;
    `episode_length` overrides the time limit.

    Raises ValueError naming close matches for an unknown id, and for action spaces
    other than Discrete and 1-D Box.
    """
    check_env_id(env, action_repeat=action_repeat, brax_backend=brax_backend)
    if is_brax_id(env):
        instance = make_brax_env(env, brax_backend, action_repeat)
        default_params = instance.default_params
    elif is_brax_instance(env):
        instance = wrap_brax_instance(env, action_repeat)
        default_params = instance.default_params
    elif is_playground_id(env) or is_playground_instance(env):
        from purejaxppo.envs import playground

        if isinstance(env, str):
            instance = playground.make_playground_env(env, action_repeat)
        else:
            instance = playground.wrap_playground_instance(env, action_repeat)
        default_params = instance.default_params
    elif library_prefix(env) is not None:
        from purejaxppo.envs.libraries import make_library_env

        instance = make_library_env(env)
        default_params = instance.default_params
    elif is_probe_id(env):
        from purejaxppo.envs import probes

        instance = getattr(probes, env[len(PROBE_PREFIX) :])()
        default_params = instance.default_params
    elif is_own_id(env):
        instance, default_params = _make_own(env)
    elif isinstance(env, str):
        instance, default_params = _make_registered(env)
    else:
        instance, default_params = env, env.default_params
    params = default_params if env_params is None else env_params
    if episode_length is not None:
        if not hasattr(params, "max_steps_in_episode"):
            raise ValueError(
                f"Config.episode_length={episode_length}: env={env!r} has no "
                "max_steps_in_episode parameter to set"
            )
        params = params.replace(max_steps_in_episode=int(episode_length))
    check_supported_space(env, instance.action_space(params))
    return instance, params


def _nvec(space: Any) -> tuple[int, ...] | None:
    """The choices per sub-action of a MultiDiscrete space (anything with `nvec`)."""
    nvec = getattr(space, "nvec", None)
    return None if nvec is None else tuple(int(n) for n in np.ravel(nvec))


def check_supported_space(env: Any, space: Any) -> None:
    """Raise ValueError unless `space` is Discrete, MultiDiscrete or a 1-D Box."""
    if isinstance(space, spaces.Discrete):
        return
    if isinstance(space, spaces.Box):
        if len(space.shape) != 1:
            raise ValueError(
                f"Config.env={env!r}: Box action spaces must be 1-D, got shape {space.shape}"
            )
        return
    nvec = _nvec(space)
    if nvec is not None:
        if not nvec or min(nvec) < 1:
            raise ValueError(
                f"Config.env={env!r}: MultiDiscrete nvec={nvec} must be non-empty and >= 1"
            )
        return
    raise ValueError(
        f"Config.env={env!r}: action space {space!r} is not supported "
        "(Discrete, MultiDiscrete or 1-D Box)"
    )


def mask_hook(env: Any) -> Any:
    """The env's `action_mask(state, params) -> bool [num_logits]` hook, or None."""
    hook = getattr(env, "action_mask", None)
    return hook if callable(hook) else None


def merge_mask(obs: Any, mask: jax.Array) -> Any:
    """obs with `mask` as obs["action_mask"] (a single array becomes
    {"observation": obs, "action_mask": mask})."""
    base = dict(obs) if isinstance(obs, dict) else {SINGLE_KEY: obs}
    return {**base, MASK_KEY: mask}


def _raw_obs_shapes(env: Any, params: Any) -> Any:
    """The env's observation (one array or a dict) as ShapeDtypeStructs, with the
    mask hook's mask merged in."""

    def reset(k):
        obs, state = env.reset(k, params)
        hook = mask_hook(env)
        return obs if hook is None else merge_mask(obs, hook(state, params))

    return jax.eval_shape(reset, jax.random.key(0))


def env_spec(env: Any, params: Any, image_encoder: str = "cnn") -> EnvSpec:
    """Observation leaves and action space of `env` (no FLOPs: uses eval_shape).
    `image_encoder="flatten"` treats [H, W, C] leaves as vectors."""
    raw = _raw_obs_shapes(env, params)
    leaves = obs_leaves(raw, image_encoder, f"Config.env={env!r}")
    obs_dim = sum(int(np.prod(leaf.shape)) for leaf in leaves if leaf.kind != "mask")
    obs_shape = () if isinstance(raw, dict) else tuple(raw.shape)
    space = env.action_space(params)
    facts = {"obs_shape": obs_shape, "obs_leaves": leaves}
    if isinstance(space, spaces.Discrete):
        return EnvSpec(obs_dim, True, int(space.n), None, None, **facts)
    nvec = _nvec(space)
    if nvec is not None:
        return EnvSpec(obs_dim, True, len(nvec), None, None, **facts, action_nvec=nvec)
    dim = int(space.shape[0])
    low = np.broadcast_to(np.asarray(space.low, np.float32), (dim,))
    high = np.broadcast_to(np.asarray(space.high, np.float32), (dim,))
    return EnvSpec(obs_dim, False, dim, low, high, **facts)


def _leaf_rows(leaf: ObsLeaf, x: jax.Array, batch: int) -> jax.Array:
    if leaf.kind == "vector":
        return x.reshape(batch, -1).astype(jnp.float32)
    if leaf.kind == "mask":
        return x.reshape(batch, -1).astype(bool)
    return x.reshape(batch, *leaf.shape).astype(leaf.dtype)


def prepare_obs(spec: EnvSpec, obs: Any, batch: int) -> Any:
    """The env's batched observation as the learner stores it (see `spec.ObsLeaf`)."""
    if not spec.dict_obs:
        return _leaf_rows(spec.leaves[0], obs, batch)
    return {leaf.key: _leaf_rows(leaf, obs[leaf.key], batch) for leaf in spec.leaves}


def reset_envs(
    env: Any, params: Any, keys: jax.Array, spec: EnvSpec | None = None
) -> tuple[Any, Any]:
    """Reset B envs. keys: [B] -> (obs [B, obs_dim] or the spec's leaves, env_state).
    `spec` (from `env_spec`) defaults to the env's own."""
    spec = env_spec(env, params) if spec is None else spec
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
    hook = mask_hook(env)
    if hook is not None:
        obs = merge_mask(obs, jax.vmap(hook, in_axes=(0, None))(state, params))
    return prepare_obs(spec, obs, keys.shape[0]), state


def split_step_keys(keys: jax.Array) -> jax.Array:
    """[..., 2] (step key, reset key) per key, exactly as gymnax's `step` splits it.

    Splitting a whole rollout's keys at once, outside the scan, is one vectorised
    RNG call instead of one small call per step.
    """
    return jax.vmap(jax.random.split)(keys.reshape(-1)).reshape((*keys.shape, 2))


def uses_base_step(env: Any) -> bool:
    """Whether `env` keeps gymnax's own `step` (so the adapter steps `step_env`)."""
    return getattr(type(env), "step", None) is Environment.step


def _auto_reset_step(env: Any, params: Any, keys: jax.Array, state: Any, action: jax.Array):
    """gymnax's `step` for one env, from its pre-split (step, reset) keys.

    Same arithmetic and keys as `Environment.step` (step_env, is_truncated,
    reset_env, select), minus the key split, which the caller does in bulk.
    """
    obs_st, state_st, reward, terminated, _ = env.step_env(keys[0], state, action, params)
    truncated = env.is_truncated(state_st, params)
    done = jnp.logical_or(terminated, truncated)
    obs_re, state_re = env.reset_env(keys[1], params)
    new_state = jax.tree.map(lambda r, s: jax.lax.select(done, r, s), state_re, state_st)
    obs = jax.tree.map(lambda r, s: jax.lax.select(done, r, s), obs_re, obs_st)
    return obs, new_state, reward, terminated, truncated, obs_st


def _step_then_reset_if_any(env: Any, params: Any, keys: jax.Array, state: Any, action):
    """The same transition as `_auto_reset_step` over B envs, for envs whose reset is
    expensive (Brax: building a physics state): the B resets run only on steps where at
    least one env finished. That saves most resets when num_envs is small next to the
    episode length (on a CPU); with thousands of envs some env ends on most steps, and
    under vmap over seeds `cond` runs both branches. Same keys, same result."""

    def step_one(k, s, a):
        obs, s_next, reward, terminated, _ = env.step_env(k, s, a, params)
        return obs, s_next, reward, terminated, env.is_truncated(s_next, params)

    obs_st, state_st, reward, terminated, truncated = jax.vmap(step_one)(keys[:, 0], state, action)
    done = jnp.logical_or(terminated, truncated)

    def reset_finished(_):
        obs_re, state_re = jax.vmap(env.reset_env, in_axes=(0, None))(keys[:, 1], params)

        def pick(r, s):
            return jnp.where(done.reshape(done.shape + (1,) * (r.ndim - 1)), r, s)

        return jax.tree.map(pick, obs_re, obs_st), jax.tree.map(pick, state_re, state_st)

    obs, new_state = jax.lax.cond(jnp.any(done), reset_finished, lambda _: (obs_st, state_st), None)
    return obs, new_state, reward, terminated, truncated, obs_st


def step_envs(
    env: Any, params: Any, spec: EnvSpec, keys: jax.Array, state: Any, action: jax.Array
) -> StepResult:
    """Step B envs with auto-reset. action: [B] int or [B, action_dim] float.

    keys: [B] (one per env, split as gymnax's `step` does) or [B, 2] already split by
    `split_step_keys`; both give the same result. Environments that override
    `step` itself are stepped through their own `step` (with the step key).
    """
    if not spec.discrete:
        action = jnp.clip(action, spec.action_low, spec.action_high)
    batch = keys.shape[0]
    if uses_base_step(env) and getattr(env, "costly_reset", False):
        if keys.ndim == 1:
            keys = split_step_keys(keys)
        obs, state, reward, terminated, truncated, final_obs = _step_then_reset_if_any(
            env, params, keys, state, action
        )
    elif uses_base_step(env):
        if keys.ndim == 1:
            keys = split_step_keys(keys)
        obs, state, reward, terminated, truncated, final_obs = jax.vmap(
            _auto_reset_step, in_axes=(None, None, 0, 0, 0)
        )(env, params, keys, state, action)
    else:
        step_keys = keys if keys.ndim == 1 else keys[:, 0]
        obs, state, reward, terminated, truncated, info = jax.vmap(
            env.step, in_axes=(0, 0, 0, None)
        )(step_keys, state, action, params)
        final_obs = info["final_observation"]
    hook = mask_hook(env)
    if hook is not None:
        mask = jax.vmap(hook, in_axes=(0, None))(state, params)
        obs = merge_mask(obs, mask)
        final_obs = merge_mask(final_obs, jnp.ones_like(mask))  # the critic reads no mask
    return StepResult(
        obs=prepare_obs(spec, obs, batch),
        env_state=state,
        reward=reward.astype(jnp.float32).reshape(batch),
        terminated=terminated.astype(bool).reshape(batch),
        truncated=jnp.logical_and(truncated, jnp.logical_not(terminated)).reshape(batch),
        final_obs=prepare_obs(spec, final_obs, batch),
    )
