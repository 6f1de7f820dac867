"""Run configuration: static fields (shapes, loop lengths, switches) and traced
hyperparameters (vmappable scalars).

`Config` is a frozen dataclass registered as a pytree: the traced
hyperparameters are its leaves, everything else lives in the treedef. Changing a
static field recompiles; sweeping a traced one does not.
"""

from __future__ import annotations

import collections
import dataclasses
import difflib
import itertools
import math
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

ACTIVATIONS = ("tanh", "relu", "gelu", "silu", "elu", "leaky_relu")

# Traced hyperparameters: pytree leaves, canonicalised to float32 on the host.
TRACED_FIELDS = (
    "lr",
    "gamma",
    "gae_lambda",
    "clip_eps",
    "vf_clip_eps",
    "vf_coef",
    "ent_coef",
    "max_grad_norm",
    "adam_eps",
    "log_std_init",
    "obs_clip",
    "reward_clip",
    "reward_scale",
    "clip_eps_final",
    "kl_beta_init",
    "desired_kl",
    "target_kl",
    "lr_min",
    "lr_max",
)
# Traced fields that may also be None, which switches their feature off. None is an empty
# pytree node, so None versus a number is a static difference (another program).
OPTIONAL_TRACED = ("target_kl",)

# (rule text, predicate) for each traced field; checked elementwise on host values.
_TRACED_RULES: dict[str, tuple[str, Any]] = {
    "lr": ("must be > 0", lambda v: v > 0),
    "gamma": ("must be in [0, 1]", lambda v: (v >= 0) & (v <= 1)),
    "gae_lambda": ("must be in [0, 1]", lambda v: (v >= 0) & (v <= 1)),
    "clip_eps": ("must be > 0", lambda v: v > 0),
    "vf_clip_eps": ("must be > 0", lambda v: v > 0),
    "vf_coef": ("must be >= 0", lambda v: v >= 0),
    "ent_coef": ("must be finite", np.isfinite),
    "max_grad_norm": ("must be > 0 (inf disables clipping)", lambda v: v > 0),
    "adam_eps": ("must be > 0", lambda v: v > 0),
    "log_std_init": ("must be finite", np.isfinite),
    "obs_clip": ("must be > 0 (inf disables clipping)", lambda v: v > 0),
    "reward_clip": ("must be > 0 (inf disables clipping)", lambda v: v > 0),
    "reward_scale": ("must be finite and > 0", lambda v: np.isfinite(v) & (v > 0)),
    "clip_eps_final": ("must be >= 0", lambda v: v >= 0),
    "kl_beta_init": ("must be finite and > 0", lambda v: np.isfinite(v) & (v > 0)),
    "desired_kl": ("must be finite and > 0", lambda v: np.isfinite(v) & (v > 0)),
    "target_kl": ("must be > 0 (None disables early stopping)", lambda v: v > 0),
    "lr_min": ("must be finite and > 0", lambda v: np.isfinite(v) & (v > 0)),
    "lr_max": ("must be finite and > 0", lambda v: np.isfinite(v) & (v > 0)),
}

OBJECTIVES = ("clip", "kl_penalty", "clip+kl_penalty")
LR_SCHEDULES = ("constant", "linear", "adaptive_kl")
CLIP_SCHEDULES = ("constant", "linear")
ADVANTAGE_NORMS = ("minibatch", "batch", "off")

CONTINUOUS_DISTS = ("gaussian", "tanh_gaussian")
BRAX_BACKENDS = ("auto", "positional", "generalized", "spring", "mjx")

_POSITIVE_INT_FIELDS = ("num_envs", "num_steps", "num_minibatches", "update_epochs")
_BOOL_FIELDS = (
    "shared_torso",
    "clip_value_loss",
    "normalize_obs",
    "normalize_reward",
)


@dataclasses.dataclass(frozen=True, eq=False)
class Config:
    """Everything that defines a PPO run. Defaults are the classic CartPole settings
    (PureJaxRL / CleanRL): 4 envs x 128 steps, 4 epochs x 4 minibatches, 64-64 tanh."""

    # ---- static: environment -------------------------------------------------------
    env: Any = "CartPole-v1"
    """Registered gymnax id (e.g. "CartPole-v1"), "brax/<name>" (e.g. "brax/hopper"), or a
    gymnax-API Environment instance."""
    env_params: Any = None
    """Environment parameters (gymnax EnvParams); None uses the env's defaults."""
    episode_length: int | None = None
    """Time limit in agent steps (truncation, bootstrapped); None keeps the env's own
    (gymnax max_steps_in_episode, 1000 for Brax)."""
    action_repeat: int = 1
    """Brax only: physics steps per agent step, with the same action (rewards summed)."""
    brax_backend: str = "auto"
    """Brax only: physics pipeline, one of auto, positional, generalized, spring, mjx
    ("auto": positional, or generalized for envs that support only that, e.g. swimmer)."""

    # ---- static: sizes and loop lengths --------------------------------------------
    num_envs: int = 4
    """Parallel environments stepped in lockstep."""
    num_steps: int = 128
    """Steps per environment per rollout (the rollout length T)."""
    num_minibatches: int = 4
    """Minibatches per epoch; must divide num_envs * num_steps."""
    update_epochs: int = 4
    """Passes over each rollout batch, each with a fresh shuffle."""
    total_timesteps: int = 500_000
    """Environment steps in the run; rounded down to a whole number of updates."""

    # ---- static: network -----------------------------------------------------------
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the actor and of the critic (or of the shared torso)."""
    critic_hidden_sizes: tuple[int, ...] | None = None
    """Hidden widths of the critic when it differs from the actor (separate torsos
    only); None uses hidden_sizes."""
    activation: str = "tanh"
    """Hidden activation: one of tanh, relu, gelu, silu, elu, leaky_relu."""
    shared_torso: bool = False
    """One torso with a policy head and a value head, instead of two separate MLPs."""

    # ---- static: switches ----------------------------------------------------------
    objective: str = "clip"
    """Policy objective: "clip" (PPO-Clip), "kl_penalty" (ratio * A - beta * KL(old || new)
    with the PPO paper's adaptive beta) or "clip+kl_penalty" (both terms)."""
    lr_schedule: str = "linear"
    """Learning rate: "constant", "linear" (annealed to 0, stepwise per update) or
    "adaptive_kl" (x or / 1.5 when the update's KL leaves [desired_kl/2, 2*desired_kl],
    kept in [lr_min, lr_max])."""
    clip_schedule: str = "constant"
    """Clip range: "constant" or "linear" (from clip_eps at the first update to
    clip_eps_final at the last)."""
    advantage_norm: str = "minibatch"
    """Advantage normalisation to zero mean, unit std: per "minibatch", over the whole
    "batch" once per update, or "off"."""
    clip_value_loss: bool = True
    """Clip the value prediction to old_value +- vf_clip_eps (PPO2/CleanRL style)."""
    normalize_obs: bool = False
    """Normalise observations by running mean/std (learner state; clipped to +-obs_clip)."""
    normalize_reward: bool = False
    """Divide rewards by the running std of the discounted return (clipped to +-reward_clip)."""
    continuous_dist: str = "gaussian"
    """Continuous policy: "gaussian" (sample clipped to the action bounds at the env) or
    "tanh_gaussian" (sample squashed by tanh into the bounds)."""

    # ---- traced hyperparameters (vmappable) ----------------------------------------
    lr: float = 2.5e-4
    """Adam learning rate (the initial value under the linear and adaptive_kl schedules)."""
    gamma: float = 0.99
    """Discount factor, in [0, 1]."""
    gae_lambda: float = 0.95
    """GAE lambda, in [0, 1]."""
    clip_eps: float = 0.2
    """Policy ratio clip range."""
    vf_clip_eps: float = 0.2
    """Value clip range (used when clip_value_loss)."""
    vf_coef: float = 0.5
    """Value loss coefficient."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip (inf disables it)."""
    adam_eps: float = 1e-5
    """Adam epsilon."""
    log_std_init: float = 0.0
    """Initial log standard deviation of the Gaussian policy (continuous actions)."""
    obs_clip: float = 10.0
    """Clip normalised observations to +-obs_clip (used when normalize_obs; inf: no clip)."""
    reward_clip: float = 10.0
    """Clip scaled rewards to +-reward_clip (used when normalize_reward; inf: no clip)."""
    reward_scale: float = 1.0
    """Constant multiplier on the rewards the learner sees (after normalize_reward)."""
    clip_eps_final: float = 0.0
    """Clip range reached at the last update when clip_schedule="linear"."""
    kl_beta_init: float = 1.0
    """Initial KL-penalty coefficient beta (objectives with kl_penalty); adapted per update."""
    desired_kl: float = 0.01
    """Target KL(old || new) per update for the adaptive beta and the adaptive_kl lr."""
    target_kl: float | None = None
    """KL early stopping: skip the rest of an update's minibatches and epochs once a
    minibatch's approximate KL exceeds 1.5 * target_kl; None disables it."""
    lr_min: float = 1e-6
    """Lower bound of the adaptive_kl learning rate."""
    lr_max: float = 1e-2
    """Upper bound of the adaptive_kl learning rate."""

    def __post_init__(self):
        total = self.total_timesteps
        if isinstance(total, float) and math.isfinite(total) and total.is_integer():
            object.__setattr__(self, "total_timesteps", int(total))
        if isinstance(self.hidden_sizes, list):
            object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        if isinstance(self.critic_hidden_sizes, list):
            object.__setattr__(self, "critic_hidden_sizes", tuple(self.critic_hidden_sizes))
        for name in TRACED_FIELDS:
            object.__setattr__(self, name, _canonical_traced(name, getattr(self, name)))
        _check_traced_shapes(self)
        _validate_static(self)

    # ---- derived sizes ---------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        """Transitions per update: num_envs * num_steps."""
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_updates(self) -> int:
        """Updates in the run: total_timesteps // batch_size."""
        return self.total_timesteps // self.batch_size

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Leading shape of the traced leaves: () for one config, (N,) for a sweep."""
        return tuple(np.shape(self.lr))

    # ---- construction helpers --------------------------------------------------------
    def replace(self, **changes) -> Config:
        """A validated copy with `changes` applied."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def preset(cls, name: str, **overrides) -> Config:
        """Tuned settings for a named env ("CartPole-v1", "Breakout-MinAtar",
        "brax/hopper", ...), with any field overridden by keyword. The source of each
        preset is in `purejaxppo.presets.PRESETS[name].source`."""
        from purejaxppo.presets import PRESETS

        if name not in PRESETS:
            close = difflib.get_close_matches(str(name), PRESETS, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ValueError(
                f"Config.preset({name!r}): no such preset{hint} (available: {', '.join(PRESETS)})"
            )
        unknown = [k for k in overrides if k not in _FIELD_NAMES]
        if unknown:
            raise TypeError(f"Config.preset({name!r}): unknown Config fields {unknown}")
        return cls(**{"env": name, **PRESETS[name].fields, **overrides})

    @classmethod
    def sweep(cls, base: Config, **grids: Sequence[float]) -> Config:
        """The Cartesian grid of traced-hyperparameter values as one batched Config.

        `Config.sweep(c, lr=[1e-3, 3e-4], ent_coef=[0.0, 0.01])` has leading axis 4, in
        `itertools.product` order (the last name varies fastest); `grid_points(...)`
        gives the same points as dicts.
        """
        points = grid_points(**grids)
        return cls.stack([base.replace(**p) for p in points])

    @classmethod
    def stack(cls, configs: Sequence[Config]) -> Config:
        """Stack configs that share their static fields into one batched Config."""
        if not configs:
            raise ValueError("Config.stack: need at least one config, got an empty list")
        first = configs[0]
        for i, c in enumerate(configs[1:], start=1):
            diff = static_differences(first, c)
            optional = [n for n in diff if n in OPTIONAL_TRACED]
            if optional:
                raise ValueError(
                    f"Config.stack: {optional[0]} is None in one of configs 0 and {i} and a "
                    "number in the other; None switches the feature off, which is a "
                    "different program, so a batch must be all None or all numbers"
                )
            if diff:
                raise ValueError(
                    f"Config.stack: config {i} differs from config 0 in static fields "
                    f"{diff}; only traced hyperparameters ({', '.join(TRACED_FIELDS)}) "
                    "may vary within one batch"
                )
        leaves = [jax.tree.leaves(c) for c in configs]
        stacked = [np.stack(column) for column in zip(*leaves, strict=True)]
        return jax.tree.unflatten(jax.tree.structure(first), stacked)

    # ---- plain-data form (checkpoints, exported policies, YAML files) ----------------
    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON/YAML data: tuples become lists, traced values become
        floats (lists of floats for a batched sweep config), target_kl may be None.

        Raises ValueError when the config holds a Python object (a gymnax Environment
        instance or env_params) that has no plain-data form."""
        out: dict[str, Any] = {}
        for name in _FIELD_NAMES:
            v = getattr(self, name)
            if name in TRACED_FIELDS:
                out[name] = None if v is None else _plain_float(v)
            elif isinstance(v, tuple):
                out[name] = list(v)
            elif v is None or isinstance(v, bool | int | float | str):
                out[name] = v
            else:
                raise ValueError(
                    f"Config.{name}={v!r}: a Python object has no plain-data form, so this "
                    "config cannot be written to a file; use a registered env id and "
                    "env_params=None"
                )
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """The Config that `to_dict` wrote (a batched one when traced values are lists).
        Unknown keys are an error naming them; missing keys take their defaults."""
        if not isinstance(data, dict):
            raise TypeError(f"Config.from_dict: expected a mapping of fields, got {data!r}")
        unknown = [k for k in data if k not in _FIELD_NAMES]
        if unknown:
            close = {k: difflib.get_close_matches(k, _FIELD_NAMES, n=1) for k in unknown}
            hints = "; ".join(
                f"{k!r} (did you mean {c[0]!r}?)" if c else repr(k) for k, c in close.items()
            )
            raise ValueError(f"Config.from_dict: unknown Config fields {hints}")
        values = dict(data)
        batched = [n for n in TRACED_FIELDS if isinstance(values.get(n), list)]
        if not batched:
            return cls(**values)
        size = len(values[batched[0]])
        for n in batched:
            if len(values[n]) != size:
                raise ValueError(
                    f"Config.from_dict: {n} has {len(values[n])} values but "
                    f"{batched[0]} has {size}; a batched config needs one per entry"
                )
        configs = [
            cls(**{k: (v[i] if k in batched else v) for k, v in values.items()})
            for i in range(size)
        ]
        return cls.stack(configs)

    def unstack(self) -> list[Config]:
        """The individual configs of a batched Config."""
        if self.batch_shape == ():
            return [self]
        n = self.batch_shape[0]
        return [jax.tree.map(lambda x, i=i: np.asarray(x)[i], self) for i in range(n)]


def _plain_float(v) -> float | list[float]:
    """float32 values as the shortest decimals that read back to the same float32
    (0.00025, not 0.0002500000118743628)."""
    arr = np.asarray(v, np.float32)
    if arr.ndim:
        return [float(str(x)) for x in arr.ravel()]
    return float(str(arr[()]))


def grid_points(**grids: Sequence[float]) -> list[dict[str, float]]:
    """The Cartesian product of `grids` as a list of {field: value} dicts."""
    for name, values in grids.items():
        if name not in TRACED_FIELDS:
            raise ValueError(
                f"Config.sweep: {name!r} is not a traced hyperparameter; sweepable fields "
                f"are {', '.join(TRACED_FIELDS)} (static fields change the compiled "
                "program: build one Config per value instead)"
            )
        if hasattr(values, "__array__") and not isinstance(values, np.ndarray):
            values = grids[name] = np.asarray(values).tolist()
        if isinstance(values, str) or not isinstance(values, Sequence | np.ndarray):
            raise TypeError(
                f"Config.sweep: {name}={values!r} must be a list of values to sweep over"
            )
        if len(values) == 0:
            raise ValueError(f"Config.sweep: {name}=[] must list at least one value")
    names = list(grids)
    return [
        dict(zip(names, combo, strict=True))
        for combo in itertools.product(*(list(grids[n]) for n in names))
    ]


def static_differences(a: Config, b: Config) -> list[str]:
    """Names of static fields whose values differ between two configs."""
    return [
        f.name
        for f in dataclasses.fields(Config)
        if (f.name not in TRACED_FIELDS and not _same(getattr(a, f.name), getattr(b, f.name)))
        or (
            f.name in OPTIONAL_TRACED
            and (getattr(a, f.name) is None) != (getattr(b, f.name) is None)
        )
    ]


def _same(x, y) -> bool:
    try:
        return bool(x == y)
    except Exception:
        return x is y


def _canonical_traced(name: str, value):
    if isinstance(value, jax.core.Tracer):
        return value  # built inside a transformation: nothing to check on the host
    if isinstance(value, list | tuple):
        raise TypeError(
            f"Config.{name}={value!r}: a traced hyperparameter takes one number; to try "
            f"several use Config.sweep(config, {name}={list(value)!r})"
        )
    if value is None and name in OPTIONAL_TRACED:
        return None
    if isinstance(value, bool) or value is None:
        raise TypeError(f"Config.{name}={value!r}: must be a number")
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise TypeError(f"Config.{name}={value!r}: must be a number") from None
    rule, ok = _TRACED_RULES[name]
    bad = ~np.asarray(ok(arr))
    if np.any(bad) or np.any(np.isnan(arr)):
        shown = value if arr.ndim == 0 else arr[bad | np.isnan(arr)].tolist()
        raise ValueError(f"Config.{name}={shown!r}: {rule}")
    return arr


def _check_traced_shapes(c: Config) -> None:
    """All traced fields share one shape: () for a single config, (N,) for a batch."""
    shapes = {n: np.shape(getattr(c, n)) for n in TRACED_FIELDS if getattr(c, n) is not None}
    if len(set(shapes.values())) > 1:
        # The odd one out is the field whose shape differs from the majority's.
        counts = collections.Counter(shapes.values())
        majority = counts.most_common(1)[0][0]
        name = next(n for n, s in shapes.items() if s != majority)
        if shapes[name] == () and majority != ():
            raise TypeError(
                f"Config.{name}={getattr(c, name)!r}: this config is a batch of shape "
                f"{majority} (a sweep), so {name} needs that shape too; set it on the base "
                "config before Config.sweep, or pass one value per batch entry"
            )
        raise TypeError(
            f"Config.{name}={getattr(c, name)!r}: a traced hyperparameter takes one number "
            f"here (its shape {shapes[name]} does not match the other fields'); build "
            f"batched configs with Config.sweep(config, {name}=[...]) or Config.stack"
        )


def _fmt(v) -> str:
    """A float32 host value as the user would have typed it (0.1, not 0.10000000149)."""
    arr = np.asarray(v)
    return f"{float(arr):g}" if arr.ndim == 0 else str([float(f"{x:g}") for x in arr.ravel()])


def _validate_static(c: Config) -> None:
    for name in _POSITIVE_INT_FIELDS:
        v = getattr(c, name)
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v <= 0:
            raise ValueError(f"Config.{name}={v!r}: must be a positive integer")
    t = c.total_timesteps
    if isinstance(t, bool) or not isinstance(t, int | np.integer) or t <= 0:
        raise ValueError(
            f"Config.total_timesteps={t!r}: must be a positive whole number (5e5 is accepted)"
        )
    if c.batch_size % c.num_minibatches:
        raise ValueError(
            f"Config.num_minibatches={c.num_minibatches}: must divide the batch "
            f"num_envs*num_steps={c.num_envs}*{c.num_steps}={c.batch_size}"
        )
    if t < c.batch_size:
        raise ValueError(
            f"Config.total_timesteps={t}: must be at least one batch "
            f"(num_envs*num_steps={c.batch_size})"
        )
    if t > 2**31 - 1:
        raise ValueError(f"Config.total_timesteps={t}: must be < 2**31 (int32 step counters)")
    for name in ("hidden_sizes", "critic_hidden_sizes"):
        hs = getattr(c, name)
        if hs is None and name == "critic_hidden_sizes":
            continue
        if not isinstance(hs, tuple) or not all(
            isinstance(h, int | np.integer) and not isinstance(h, bool) and h > 0 for h in hs
        ):
            raise ValueError(
                f"Config.{name}={hs!r}: must be a tuple of positive integers, e.g. (64, 64)"
            )
    if c.critic_hidden_sizes is not None and c.shared_torso:
        raise ValueError(
            f"Config.critic_hidden_sizes={c.critic_hidden_sizes!r}: needs separate torsos "
            "(shared_torso=False); a shared torso has one set of widths, hidden_sizes"
        )
    if c.activation not in ACTIVATIONS:
        close = difflib.get_close_matches(str(c.activation), ACTIVATIONS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"Config.activation={c.activation!r}: must be one of {', '.join(ACTIVATIONS)}{hint}"
        )
    if c.continuous_dist not in CONTINUOUS_DISTS:
        raise ValueError(
            f"Config.continuous_dist={c.continuous_dist!r}: must be one of "
            f"{', '.join(CONTINUOUS_DISTS)}"
        )
    for name, allowed in (
        ("objective", OBJECTIVES),
        ("lr_schedule", LR_SCHEDULES),
        ("clip_schedule", CLIP_SCHEDULES),
        ("advantage_norm", ADVANTAGE_NORMS),
    ):
        v = getattr(c, name)
        if v not in allowed:
            close = difflib.get_close_matches(str(v), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"Config.{name}={v!r}: must be one of {', '.join(allowed)}{hint}")
    lo, hi, lr = c.lr_min, c.lr_max, c.lr
    if not any(isinstance(v, jax.core.Tracer) for v in (lo, hi, lr)):
        if np.any(np.asarray(lo) > np.asarray(hi)):
            raise ValueError(f"Config.lr_min={_fmt(lo)}: must be <= lr_max={_fmt(hi)}")
        outside = (np.asarray(lr) < np.asarray(lo)) | (np.asarray(lr) > np.asarray(hi))
        if c.lr_schedule == "adaptive_kl" and np.any(outside):
            raise ValueError(
                f"Config.lr={_fmt(lr)}: with lr_schedule='adaptive_kl' the initial lr must "
                f"lie in [lr_min, lr_max] = [{_fmt(lo)}, {_fmt(hi)}]"
            )
    if c.brax_backend not in BRAX_BACKENDS:
        raise ValueError(
            f"Config.brax_backend={c.brax_backend!r}: must be one of {', '.join(BRAX_BACKENDS)}"
        )
    for name in ("action_repeat",):
        v = getattr(c, name)
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v <= 0:
            raise ValueError(f"Config.{name}={v!r}: must be a positive integer")
    ep = c.episode_length
    if ep is not None and (isinstance(ep, bool) or not isinstance(ep, int | np.integer) or ep <= 0):
        raise ValueError(
            f"Config.episode_length={ep!r}: must be a positive integer or None (env default)"
        )
    for name in _BOOL_FIELDS:
        v = getattr(c, name)
        if not isinstance(v, bool | np.bool_):
            raise TypeError(f"Config.{name}={v!r}: must be True or False")
    # Imported here: envs imports config for type hints only, and resolving the env
    # also checks that its action space is one we support.
    from purejaxppo.envs import resolve_env

    env, params = resolve_env(c.env, c.env_params, **env_options(c))
    space = env.action_space(params)
    if c.continuous_dist == "tanh_gaussian" and hasattr(space, "low"):  # Box, not Discrete
        bounds = np.concatenate([np.ravel(space.low), np.ravel(space.high)]).astype(float)
        if not np.all(np.isfinite(bounds)):
            raise ValueError(
                f"Config.continuous_dist='tanh_gaussian': squashing needs finite action "
                f"bounds, and env={c.env!r} has low={space.low!r}, high={space.high!r}"
            )
    try:
        hash(c.env_params)
    except TypeError:
        raise TypeError(
            f"Config.env_params={c.env_params!r}: must be hashable (it is static); "
            "use Python numbers rather than arrays in its fields"
        ) from None


def env_options(c: Config) -> dict[str, Any]:
    """The Config fields that shape the environment, as keyword arguments of resolve_env."""
    return {
        "episode_length": c.episode_length,
        "action_repeat": c.action_repeat,
        "brax_backend": c.brax_backend,
    }


def _flatten(c: Config):
    static = tuple(
        getattr(c, f.name) for f in dataclasses.fields(Config) if f.name not in TRACED_FIELDS
    )
    return tuple(getattr(c, n) for n in TRACED_FIELDS), static


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(Config))
_STATIC_NAMES = tuple(f.name for f in dataclasses.fields(Config) if f.name not in TRACED_FIELDS)


def _unflatten(static, traced) -> Config:
    # No validation here: leaves may be tracers or batched arrays inside transforms.
    c = object.__new__(Config)
    for name, v in zip(_STATIC_NAMES, static, strict=True):
        object.__setattr__(c, name, v)
    for name, v in zip(TRACED_FIELDS, traced, strict=True):
        object.__setattr__(c, name, v)
    return c


jax.tree_util.register_pytree_node(Config, _flatten, _unflatten)
