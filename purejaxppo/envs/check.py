"""`check_env`: does an environment keep the adapter protocol the trainer relies on?

Like Stable-Baselines3's env checker, for JAX envs: it jits and vmaps reset and step,
runs a few short episodes with random legal actions and raises `EnvCheckError` (a
ValueError) with one sentence saying what is wrong. It accepts anything `Config.env`
accepts (an id, a gymnax Environment instance, a `brax.envs.Env` instance) and checks
the env as the trainer sees it, through `resolve_env`, `reset_envs` and `step_envs`.

The protocol (README, "Environments: the adapter protocol"):

- `reset(key, params) -> (obs, state)`; `obs` is one array or a flat dict of arrays
  (an optional bool "action_mask" entry, or an `action_mask(state, params)` method).
- `step_env(key, state, action, params) -> (obs, state, reward, terminated, info)`
  with `terminated` true only for a true terminal state; the time limit is
  `params.max_steps_in_episode` against `state.time` (gymnax's `is_truncated`), so a
  time-limit end is a truncation and bootstraps from the final observation. An env
  that overrides gymnax's `step` must return `(obs, state, reward, terminated,
  truncated, info)` with the pre-reset observation in `info["final_observation"]`.
- `action_space(params)`: Discrete, MultiDiscrete (`nvec`) or a 1-D Box;
  `observation_space(params)` (optional) the observation's shapes and dtypes.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces

from purejaxppo.envs.gymnax_adapter import (
    env_spec,
    mask_hook,
    merge_mask,
    reset_envs,
    resolve_env,
    step_envs,
    uses_base_step,
)
from purejaxppo.envs.spec import MASK_KEY, EnvSpec


class EnvCheckError(ValueError):
    """An environment breaks the adapter protocol; the message says how."""


class EnvCheckReport(NamedTuple):
    """What `check_env` ran and saw (when every check passed)."""

    spec: EnvSpec
    steps: int  # vectorised steps taken (each of num_envs envs)
    terminations: int  # episode ends by a terminal state, over all envs
    truncations: int  # episode ends by the time limit
    time_limit: int | None  # the time limit the check ran with (None: the env's own)
    skipped: tuple[str, ...]  # checks that did not apply, and why


def _fail(env: Any, message: str) -> None:
    raise EnvCheckError(f"check_env(env={env!r}): {message}")


def _leaves(tree: Any) -> list[tuple[str, Any]]:
    return [
        (jax.tree_util.keystr(path) or "obs", x)
        for path, x in jax.tree_util.tree_leaves_with_path(tree)
    ]


def _check_against_space(env: Any, obs: Any, space: Any, where: str) -> None:
    """Each observation leaf (one env's) has its space's shape and dtype."""
    if isinstance(space, spaces.Dict):
        if not isinstance(obs, dict) or set(obs) - {MASK_KEY} != set(space.spaces) - {MASK_KEY}:
            got = sorted(obs) if isinstance(obs, dict) else type(obs).__name__
            _fail(env, f"{where} has keys {got}, but observation_space has {sorted(space.spaces)}")
        for key, sub in space.spaces.items():
            if key in obs:
                _check_against_space(env, obs[key], sub, f"{where}[{key!r}]")
        return
    shape = getattr(space, "shape", None)
    if shape is None or isinstance(obs, dict):
        return
    if tuple(obs.shape) != tuple(shape):
        _fail(
            env, f"{where} has shape {tuple(obs.shape)}, but observation_space says {tuple(shape)}"
        )
    dtype = getattr(space, "dtype", None)
    if dtype is not None and jnp.dtype(obs.dtype) != jnp.dtype(dtype):
        _fail(
            env,
            f"{where} has dtype {jnp.dtype(obs.dtype)}, but observation_space says "
            f"{jnp.dtype(dtype)}",
        )


def _random_actions(spec: EnvSpec, obs: Any, key: jax.Array, batch: int) -> jax.Array:
    """Uniformly random legal actions for a batch (the mask respected)."""
    mask = obs.get(MASK_KEY) if isinstance(obs, dict) else None
    if not spec.discrete:
        low, high = jnp.asarray(spec.action_low), jnp.asarray(spec.action_high)
        finite = jnp.isfinite(low) & jnp.isfinite(high)
        u = jax.random.uniform(key, (batch, spec.action_dim))
        return jnp.where(finite, low + u * (high - low), jax.random.normal(key, u.shape))
    sizes = spec.action_nvec or (spec.action_dim,)
    width = max(sizes)
    legal = jnp.arange(width)[None, :] < jnp.asarray(sizes)[:, None]  # [sub, width]
    legal = jnp.broadcast_to(legal, (batch, *legal.shape))
    if mask is not None:
        pieces = jnp.split(mask, np.cumsum(sizes)[:-1], axis=-1)
        padded = [jnp.pad(p, ((0, 0), (0, width - p.shape[-1]))) for p in pieces]
        legal = legal & jnp.stack(padded, axis=1)
    logits = jnp.where(legal, 0.0, -jnp.inf)
    actions = jax.random.categorical(key, logits, axis=-1)  # [batch, sub]
    return actions if spec.action_nvec else actions[:, 0]


def _has_time_limit(params: Any) -> bool:
    return hasattr(params, "max_steps_in_episode") and hasattr(params, "replace")


BOUND_STEPS = 4  # steps taken at the Box's bounds first (continuous, finite bounds)


def _bounded(spec: EnvSpec) -> bool:
    if spec.discrete:
        return False
    return bool(np.all(np.isfinite(spec.action_low)) and np.all(np.isfinite(spec.action_high)))


class _Trajectory(NamedTuple):
    obs0: Any  # reset observations [num_envs, ...]
    obs_again: Any  # reset observations from other keys [num_envs, ...]
    steps: Any  # StepResults stacked [num_steps, num_envs, ...] (no env_state)
    actions: jax.Array  # [num_steps, num_envs, ...]


def _trajectory_fn(env, params, spec, num_envs, num_steps):
    """One program: 2 * num_envs resets (the second half only to compare), then
    num_steps step_envs from the first half; random legal actions, except that with a
    bounded Box the first BOUND_STEPS steps put half the envs at low and half at high."""
    bounds = None
    if _bounded(spec):
        bounds = jnp.stack([jnp.asarray(spec.action_low), jnp.asarray(spec.action_high)])

    def run(key):
        k_reset, k_steps = jax.random.split(key)
        obs, state = reset_envs(env, params, jax.random.split(k_reset, 2 * num_envs), spec)
        first = jax.tree.map(lambda x: x[:num_envs], (obs, state))
        again = jax.tree.map(lambda x: x[num_envs:], obs)

        def step(carry, xs):
            obs, state = carry
            t, k = xs
            k_act, k_env = jax.random.split(k)
            action = _random_actions(spec, obs, k_act, num_envs)
            if bounds is not None:
                at_bounds = bounds[jnp.arange(num_envs) % 2]
                action = jnp.where(t < BOUND_STEPS, at_bounds, action)
            out = step_envs(env, params, spec, jax.random.split(k_env, num_envs), state, action)
            return (out.obs, out.env_state), (out._replace(env_state=None), action)

        xs = (jnp.arange(num_steps), jax.random.split(k_steps, num_steps))
        _, (steps, actions) = jax.lax.scan(step, first, xs)
        return _Trajectory(first[0], again, steps, actions)

    return run


def _run_twice(env, params, spec, key, num_envs, num_steps) -> _Trajectory:
    """The trajectory, and a check that tracing the program anew gives the same one
    (randomness drawn at trace time, e.g. by numpy, would differ): two lowerings with
    the same text compute the same thing, so the second is compiled only when its
    text differs."""
    lowered = jax.jit(_trajectory_fn(env, params, spec, num_envs, num_steps)).lower(key)
    out = lowered.compile()(key)
    relowered = jax.jit(_trajectory_fn(env, params, spec, num_envs, num_steps)).lower(key)
    if relowered.as_text() != lowered.as_text() and not _equal_trees(out, relowered.compile()(key)):
        _fail(
            env,
            "the same key gave two different trajectories (randomness that "
            "does not come from the key, such as numpy or Python random at trace time)",
        )
    return out


def _equal_trees(a: Any, b: Any) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(
        x.shape == y.shape and np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True)
        for x, y in zip(la, lb, strict=True)
    )


def _rows_differ(tree: Any) -> bool:
    """Whether some leaf differs between rows (leading axis)."""
    return any(
        x.shape[0] > 1 and not np.all(np.asarray(x) == np.asarray(x)[:1])
        for x in jax.tree.leaves(tree)
    )


def check_env(
    env: Any,
    env_params: Any = None,
    *,
    num_envs: int = 4,
    num_steps: int = 64,
    time_limit: int | None = 16,
    random_resets: bool = True,
    seed: int = 0,
) -> EnvCheckReport:
    """Check that `env` keeps the adapter protocol; return an `EnvCheckReport`, or
    raise `EnvCheckError` saying what is wrong in one sentence.

    `time_limit` (when the env has `params.max_steps_in_episode`) shortens the
    episodes so that `num_steps` steps see truncations; None keeps the env's own.
    `random_resets=False` skips the checks that resets differ across envs and
    episodes (for envs whose start is deterministic by design).
    """
    instance, params = resolve_env(env)
    if env_params is not None:
        params = env_params
    skipped: list[str] = []
    limit = None
    if time_limit is not None and _has_time_limit(params):
        limit = int(min(int(params.max_steps_in_episode), time_limit))
        params = params.replace(max_steps_in_episode=limit)
    elif time_limit is not None:
        skipped.append("time limit: the env's params have no max_steps_in_episode")
    spec = env_spec(instance, params)
    key = jax.random.key(seed)
    _check_one_step(instance, params, spec, key, skipped)
    run = _run_twice(instance, params, spec, key, num_envs, num_steps)
    _check_resets(instance, run, num_envs, random_resets, skipped)
    _check_action_in_space(instance, instance.action_space(params), run.actions[0, 0], spec)
    steps = run.steps
    if _bounded(spec):
        bound = jax.tree.map(lambda x: x[:BOUND_STEPS], steps)
        _check_finite(instance, bound.obs, "the observation after actions at the bounds")
        if not np.all(np.isfinite(np.asarray(bound.reward))):
            _fail(instance, "actions at the action space's bounds gave a non-finite reward")
    _check_finite(instance, steps.obs, "step's observation")
    if not np.all(np.isfinite(np.asarray(steps.reward))):
        _fail(instance, "step returned a non-finite reward")
    terminated, truncated = np.asarray(steps.terminated), np.asarray(steps.truncated)
    _check_final_obs(instance, steps, terminated | truncated, random_resets, skipped)
    if MASK_KEY in (steps.obs if isinstance(steps.obs, dict) else {}):
        _check_mask(instance, spec, run.obs0, steps.obs)
    if limit is not None:
        _check_time_limit(instance, terminated, truncated, limit)
    else:
        skipped.append("truncation at the time limit: no time limit to test")
    return EnvCheckReport(
        spec, num_steps, int(terminated.sum()), int(truncated.sum()), limit, tuple(skipped)
    )


def _check_one_step(env: Any, params: Any, spec: EnvSpec, key: jax.Array, skipped: list) -> None:
    """One env, unbatched, traced but not compiled: the spaces, and the structure,
    shapes and dtypes of what reset and one step return."""
    obs, state = jax.eval_shape(env.reset, key, params)
    try:
        space = env.observation_space(params)
    except (AttributeError, NotImplementedError):
        space = None
        skipped.append("observation_space: not defined")
    if space is not None:
        _check_against_space(env, obs, space, "reset's observation")

    def one_action(obs, state, key):
        return _random_actions(spec, _mask_only(obs, env, state, params), key, 1)[0]

    action = jax.eval_shape(one_action, obs, state, key)
    if uses_base_step(env):
        obs1, _, reward, terminated, _ = jax.eval_shape(env.step_env, key, state, action, params)
    else:
        raw = jax.eval_shape(env.step, key, state, action, params)
        if len(raw) != 6 or not isinstance(raw[5], dict) or "final_observation" not in raw[5]:
            _fail(
                env,
                "its own step must return (obs, state, reward, terminated, "
                "truncated, info) with the pre-reset observation in info['final_observation'] "
                "(wrap an env written for gymnax before 1.0 in "
                "purejaxppo.envs.libraries.LegacyGymnaxEnv)",
            )
        obs1, _, reward, terminated = raw[:4]
    if jax.tree.structure(obs1) != jax.tree.structure(obs) or any(
        a.shape != b.shape or a.dtype != b.dtype
        for a, b in zip(jax.tree.leaves(obs1), jax.tree.leaves(obs), strict=True)
    ):
        _fail(
            env,
            "step's observation differs from reset's in structure, shape or dtype "
            f"({_describe(obs1)} vs {_describe(obs)})",
        )
    if jnp.shape(reward) != () or not jnp.issubdtype(reward.dtype, jnp.floating):
        _fail(env, f"reward must be a float scalar per env, got {_describe(reward)}")
    kind = jnp.dtype(terminated.dtype)
    if jnp.shape(terminated) != () or not (kind == jnp.bool_ or jnp.issubdtype(kind, jnp.integer)):
        _fail(env, f"terminated must be a bool scalar per env, got {_describe(terminated)}")


def _check_resets(env, run: _Trajectory, num_envs: int, random_resets: bool, skipped) -> None:
    """Batched resets: finite, and (random_resets) different across envs and episodes."""
    obs_a, obs_b = run.obs0, run.obs_again
    if random_resets:
        if not _rows_differ(obs_a):
            _fail(
                env,
                f"reset gave the same observation to all {num_envs} envs "
                "(is the key used?); pass random_resets=False if the start is fixed by design",
            )
        if _equal_trees(obs_a, obs_b):
            _fail(env, "reset with new keys repeated the previous episodes' observations")
    else:
        skipped.append("random resets: random_resets=False")
    _check_finite(env, obs_a, "reset's observation")


def _mask_only(obs: Any, env: Any, state: Any, params: Any) -> Any:
    """{"action_mask": [1, n]} of one env's observation or mask hook, else {}: what
    `_random_actions` reads to draw one legal action."""
    hook = mask_hook(env)
    if hook is not None:
        obs = merge_mask(obs, hook(state, params))
    if isinstance(obs, dict) and MASK_KEY in obs:
        return {MASK_KEY: jnp.reshape(obs[MASK_KEY], (1, -1)).astype(bool)}
    return {}


def _describe(tree: Any) -> str:
    return ", ".join(
        f"{name}: {jnp.dtype(x.dtype)}{list(jnp.shape(x))}" for name, x in _leaves(tree)
    )


def _check_finite(env: Any, obs: Any, where: str) -> None:
    for name, x in _leaves(obs):
        x = np.asarray(x)
        if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
            _fail(env, f"{where} {name} is not finite")


def _check_action_in_space(env: Any, space: Any, action: jax.Array, spec: EnvSpec) -> None:
    contains = getattr(space, "contains", None)
    if contains is not None and not bool(contains(action)):
        _fail(
            env,
            f"a legal action {np.asarray(action).tolist()} is outside its own "
            f"action_space {space!r}",
        )
    sample = getattr(space, "sample", None)
    if sample is not None and contains is not None:
        drawn = sample(jax.random.key(1))
        if not bool(contains(drawn)):
            _fail(
                env, f"action_space.sample() gave {np.asarray(drawn).tolist()}, outside the space"
            )
    if not spec.discrete and np.any(np.asarray(spec.action_low) > np.asarray(spec.action_high)):
        _fail(env, f"action_space has low {spec.action_low} above high {spec.action_high}")


def _check_final_obs(
    env: Any, steps: Any, done: np.ndarray, random_resets: bool, skipped: list
) -> None:
    """final_obs is the observation the step reached: equal to obs where no episode
    ended, and (with random resets) not the reset observation where one did."""
    ended_somewhere = False
    for (name, final), (_, obs) in zip(_leaves(steps.final_obs), _leaves(steps.obs), strict=True):
        if name.endswith(f"['{MASK_KEY}']"):
            continue
        final, obs = np.asarray(final), np.asarray(obs)
        same = np.all((final == obs).reshape(*done.shape, -1), axis=-1)
        if np.any(~same & ~done):
            _fail(
                env,
                f"the final observation {name} differs from the observation at a step "
                "where no episode ended",
            )
        if done.any():
            ended_somewhere = True
            if random_resets and np.all(same[done]):
                _fail(
                    env,
                    "at every episode end the final observation equals the reset "
                    "observation: the env returns the observation after its auto-reset, "
                    "so a truncated episode would bootstrap from the next episode's start",
                )
    if not ended_somewhere:
        skipped.append("final observation at episode ends: no episode ended")


def _check_time_limit(env: Any, terminated: np.ndarray, truncated: np.ndarray, limit: int) -> None:
    """Per env, count steps since the last episode end: a truncation comes exactly at
    the limit, an episode never runs past it, and reaching it is a truncation (not a
    termination) unless the last step was also terminal."""
    steps, num_envs = terminated.shape
    elapsed = np.zeros(num_envs, int)
    at_limit_terminated = at_limit_truncated = 0
    for t in range(steps):
        elapsed += 1
        if np.any(truncated[t] & (elapsed != limit)):
            _fail(
                env,
                f"an episode was truncated after {int(elapsed[truncated[t]][0])} steps, "
                f"not at the time limit of {limit}",
            )
        at_limit = elapsed == limit
        if np.any(at_limit & ~(terminated[t] | truncated[t])):
            _fail(env, f"an episode ran past the time limit of {limit} steps without ending")
        at_limit_terminated += int(np.sum(at_limit & terminated[t]))
        at_limit_truncated += int(np.sum(at_limit & truncated[t]))
        elapsed[terminated[t] | truncated[t]] = 0
    if at_limit_terminated and not at_limit_truncated:
        _fail(
            env,
            f"every episode that reached the time limit ({limit} steps) was reported "
            "terminated: a time limit must be a truncation (gymnax's is_truncated), or "
            "the critic learns that time runs out",
        )


def _check_mask(env: Any, spec: EnvSpec, obs0: Any, obs: Any) -> None:
    sizes = spec.action_nvec or (spec.action_dim,)
    for where, m in (("reset", obs0[MASK_KEY]), ("step", obs[MASK_KEY])):
        m = np.asarray(m).reshape(-1, sum(sizes))
        for piece in np.split(m, np.cumsum(sizes)[:-1], axis=-1):
            if not np.all(piece.any(axis=-1)):
                _fail(env, f"the action mask after {where} allows no action (for some sub-action)")
