"""Run configuration: static fields (shapes, loop lengths, switches) and traced
hyperparameters (vmappable scalars).

`Config` is a frozen dataclass registered as a pytree: the traced
hyperparameters are its leaves, everything else lives in the treedef. Changing a
static field recompiles; sweeping a traced one does not.

Each field declares once, with `static(default, *rules)` or `traced(default, rule)`,
which kind it is and what values it takes; its docstring says what it means. The
traced-field list, the pytree structure, the canonicalisation of traced values, the
validation and the README's config table (`markdown_table`) all derive from that.
"""

from __future__ import annotations

import ast
import collections
import dataclasses
import difflib
import inspect
import itertools
import json
import math
import textwrap
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
import numpy as np

ACTIVATIONS = ("tanh", "relu", "gelu", "silu", "elu", "leaky_relu")
OBJECTIVES = ("clip", "kl_penalty", "clip+kl_penalty")
LR_SCHEDULES = ("constant", "linear", "cosine", "adaptive_kl")
ENT_SCHEDULES = ("constant", "linear", "cosine")
CLIP_SCHEDULES = ("constant", "linear")
ADVANTAGE_NORMS = ("minibatch", "batch", "off")
CONTINUOUS_DISTS = ("gaussian", "tanh_gaussian")
MATMUL_PRECISIONS = ("float32", "tensorfloat32", "default")
VALUE_TARGETS = ("mse", "symlog", "hl_gauss")
IMAGE_ENCODERS = ("cnn", "flatten")
# The smallest std of a state-dependent Gaussian head: std = softplus(head) + MIN_STD
# (Brax's NormalTanhDistribution and gymnax-blines' GaussianSeparateMLP use 0.001).
MIN_STD = 0.001
RECURRENT_CELLS = (None, "gru", "lstm")
BRAX_BACKENDS = ("auto", "positional", "generalized", "spring", "mjx")

# Old field name -> (new name, why). Refused with an error that names the new one.
RENAMED_FIELDS = {
    "kl_target": (
        "desired_kl",
        "Brax's name for the adaptive-KL target; target_kl is the early-stopping threshold",
    ),
}


class RenamedFieldError(TypeError, ValueError):
    """A renamed Config field was given by its old name. A TypeError like any unknown
    keyword argument, and a ValueError like an unknown key of a config file."""


def check_renamed(names: Iterable[str]) -> None:
    """Raise RenamedFieldError for the first old (renamed) field name in `names`."""
    for name in names:
        if name in RENAMED_FIELDS:
            new, why = RENAMED_FIELDS[name]
            raise RenamedFieldError(f"Config.{name} was renamed {new} ({why})")


# ---- rules: small named checks on one field's value ---------------------------------


@dataclasses.dataclass(frozen=True)
class Rule:
    """A named check on one value. `text` completes "Config.<field>=<value>: ...";
    `ok` is the predicate (applied elementwise to float32 arrays for traced fields)."""

    text: str
    ok: Callable[[Any], Any]
    error: type[Exception] = ValueError

    def message(self, value: Any) -> str:
        return self.text

    def check(self, name: str, value: Any) -> None:
        """Raise `error` naming the field, the value and the rule unless `ok(value)`."""
        if not self.ok(value):
            raise self.error(f"Config.{name}={value!r}: {self.message(value)}")


@dataclasses.dataclass(frozen=True)
class OneOf(Rule):
    """The value is one of `choices`; the error suggests the closest one."""

    choices: tuple[str, ...] = ()

    def message(self, value: Any) -> str:
        close = difflib.get_close_matches(str(value), self.choices, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{self.text}{hint}"


def one_of(choices: tuple[str, ...]) -> OneOf:
    return OneOf(f"must be one of {', '.join(choices)}", lambda v: v in choices, choices=choices)


def _is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def _is_widths(v: Any) -> bool:
    return isinstance(v, tuple) and all(_is_int(h) and h > 0 for h in v)


def _is_hashable(v: Any) -> bool:
    try:
        hash(v)
    except TypeError:
        return False
    return True


def _is_obs_keys(v: Any) -> bool:
    if v is None or isinstance(v, str):
        return True
    return isinstance(v, tuple) and len(v) > 0 and all(isinstance(k, str) for k in v)


OBS_KEYS = Rule("must be None, a key (str) or a non-empty tuple of keys", _is_obs_keys, TypeError)
RECURRENT = OneOf(
    "must be None (feed-forward), 'gru' or 'lstm'",
    lambda v: v in RECURRENT_CELLS,
    choices=tuple(c for c in RECURRENT_CELLS if c is not None),
)
POSITIVE_INT = Rule("must be a positive integer", lambda v: _is_int(v) and v > 0)
WHOLE_TIMESTEPS = Rule(
    "must be a positive whole number (5e5 is accepted)", lambda v: _is_int(v) and v > 0
)
INT32_COUNT = Rule("must be < 2**31 (int32 step counters)", lambda v: v <= 2**31 - 1)
TIME_LIMIT = Rule(
    "must be a positive integer or None (env default)",
    lambda v: v is None or (_is_int(v) and v > 0),
)
WIDTHS = Rule("must be a tuple of positive integers, e.g. (64, 64)", _is_widths)
OPTIONAL_WIDTHS = Rule(WIDTHS.text, lambda v: v is None or _is_widths(v))
SWITCH = Rule("must be True or False", lambda v: isinstance(v, bool | np.bool_), TypeError)
HASHABLE = Rule(
    "must be hashable (it is static); use Python numbers rather than arrays in its fields",
    _is_hashable,
    TypeError,
)

# Traced rules: predicates on float32 arrays, elementwise (NaN always fails).
POSITIVE = Rule("must be > 0", lambda v: v > 0)
NON_NEGATIVE = Rule("must be >= 0", lambda v: v >= 0)
UNIT_INTERVAL = Rule("must be in [0, 1]", lambda v: (v >= 0) & (v <= 1))
FINITE = Rule("must be finite", np.isfinite)
FINITE_POSITIVE = Rule("must be finite and > 0", lambda v: np.isfinite(v) & (v > 0))
CLIP_BOUND = Rule("must be > 0 (inf disables clipping)", lambda v: v > 0)
STEP_SIZE = Rule("must be in (0, 1]", lambda v: (v > 0) & (v <= 1))
EARLY_STOP = Rule("must be > 0 (None disables early stopping)", lambda v: v > 0)


# ---- conversions applied before the rules ------------------------------------------


def whole_float_to_int(v: Any) -> Any:
    """5e5 -> 500000 (a float that is a whole number); anything else unchanged."""
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        return int(v)
    return v


def list_to_tuple(v: Any) -> Any:
    """[64, 64] -> (64, 64): static values must be hashable."""
    return tuple(v) if isinstance(v, list) else v


# ---- field declarations --------------------------------------------------------------


def static(default: Any, *rules: Rule, convert: Callable[[Any], Any] | None = None) -> Any:
    """A static Config field (in the treedef: changing it recompiles), checked by
    `rules` in order after `convert`."""
    return dataclasses.field(
        default=default, metadata={"kind": "static", "rules": rules, "convert": convert}
    )


def traced(default: Any, rule: Rule, *, optional: bool = False) -> Any:
    """A traced Config field (a float32 pytree leaf: vmappable, sweepable), checked
    elementwise by `rule`. `optional`: None is allowed and switches the feature off."""
    return dataclasses.field(
        default=default, metadata={"kind": "traced", "rules": (rule,), "optional": optional}
    )


@dataclasses.dataclass(frozen=True, eq=False)
class Config:
    """Everything that defines a PPO run. Defaults are the classic CartPole settings
    (PureJaxRL / CleanRL): 4 envs x 128 steps, 4 epochs x 4 minibatches, 64-64 tanh."""

    # ---- static: environment -------------------------------------------------------
    env: Any = static("CartPole-v1")  # noqa: RUF009 (returns a dataclasses.field)
    """Registered gymnax id (e.g. "CartPole-v1"), "brax/<name>" (e.g. "brax/hopper"), or a
    gymnax-API Environment instance."""
    env_params: Any = static(None, HASHABLE)  # noqa: RUF009
    """Environment parameters (gymnax EnvParams); None uses the env's defaults."""
    episode_length: int | None = static(None, TIME_LIMIT)
    """Time limit in agent steps (truncation, bootstrapped); None keeps the env's own
    (gymnax max_steps_in_episode, 1000 for Brax)."""
    action_repeat: int = static(1, POSITIVE_INT)
    """Brax only: physics steps per agent step, with the same action (rewards summed)."""
    brax_backend: str = static("auto", one_of(BRAX_BACKENDS))
    """Brax only: physics pipeline, one of auto, positional, generalized, spring, mjx
    ("auto": positional, or generalized for envs that support only that, e.g. swimmer)."""

    # ---- static: sizes and loop lengths --------------------------------------------
    num_envs: int = static(4, POSITIVE_INT)
    """Parallel environments stepped in lockstep."""
    num_steps: int = static(128, POSITIVE_INT)
    """Steps per environment per rollout (the rollout length T)."""
    num_minibatches: int = static(4, POSITIVE_INT)
    """Minibatches per epoch; must divide num_envs * num_steps."""
    update_epochs: int = static(4, POSITIVE_INT)
    """Passes over each rollout batch, each with a fresh shuffle."""
    total_timesteps: int = static(500_000, WHOLE_TIMESTEPS, INT32_COUNT, convert=whole_float_to_int)
    """Environment steps in the run; rounded down to a whole number of updates."""

    # ---- static: network -----------------------------------------------------------
    hidden_sizes: tuple[int, ...] = static((64, 64), WIDTHS, convert=list_to_tuple)
    """Hidden layer widths of the actor and of the critic (or of the shared torso)."""
    critic_hidden_sizes: tuple[int, ...] | None = static(
        None, OPTIONAL_WIDTHS, convert=list_to_tuple
    )
    """Hidden widths of the critic when it differs from the actor (separate torsos
    only); None uses hidden_sizes."""
    activation: str = static("tanh", one_of(ACTIVATIONS))
    """Hidden activation: one of tanh, relu, gelu, silu, elu, leaky_relu."""
    shared_torso: bool = static(False, SWITCH)
    """One torso with a policy head and a value head, instead of two separate MLPs."""
    image_encoder: str = static("cnn", one_of(IMAGE_ENCODERS))
    """Observation leaves of rank 3 ([H, W, C] images): "cnn" encodes them with a CNN
    (uint8 pixels scaled by 1/255, never normalised) before the torso; "flatten" feeds
    them to the MLP as vectors, like the old MinAtar baselines."""
    cnn_channels: tuple[int, ...] | None = static(None, OPTIONAL_WIDTHS, convert=list_to_tuple)
    """Output channels of the CNN's conv layers (ReLU, VALID padding). None picks by
    image size: (16,) with 3x3 stride 1 below 32 pixels (MinAtar's network), else the
    Nature-DQN (32, 64, 64) with kernels (8, 4, 3) and strides (4, 2, 1)."""
    cnn_kernels: tuple[int, ...] | None = static(None, OPTIONAL_WIDTHS, convert=list_to_tuple)
    """Square kernel size per conv layer (needs cnn_channels); None: 3 for each."""
    cnn_strides: tuple[int, ...] | None = static(None, OPTIONAL_WIDTHS, convert=list_to_tuple)
    """Stride per conv layer (needs cnn_channels); None: 1 for each."""
    recurrent: str | None = static(None, RECURRENT)
    """Memory: None (feed-forward), "gru" or "lstm" (purejaxppo.nn.cells)
    after the torso MLP and before the heads; the actor and the critic each have a
    cell (one with shared_torso). The hidden state of each env is reset at every
    episode end, and minibatches are whole env sequences (num_minibatches must divide
    num_envs)."""
    recurrent_size: int = static(128, POSITIVE_INT)
    """Hidden-state width of the recurrent cell (used when recurrent is set)."""
    policy_obs_key: str | tuple[str, ...] | None = static(None, OBS_KEYS, convert=list_to_tuple)
    """Dict observations: the key (or tuple of keys) the policy reads; None reads every
    key but "action_mask" (Brax's policy_obs_key). Exported policies need only these."""
    value_obs_key: str | tuple[str, ...] | None = static(None, OBS_KEYS, convert=list_to_tuple)
    """Dict observations: the key(s) the critic reads, e.g. a privileged state the
    policy never sees (asymmetric actor-critic; Brax's value_obs_key); None: every key
    but "action_mask"."""

    # ---- static: switches ----------------------------------------------------------
    objective: str = static("clip", one_of(OBJECTIVES))
    """Policy objective: "clip" (PPO-Clip), "kl_penalty" (ratio * A - beta * KL(old || new)
    with the PPO paper's adaptive beta) or "clip+kl_penalty" (both terms)."""
    lr_schedule: str = static("linear", one_of(LR_SCHEDULES))
    """Learning rate, stepwise per update: after an optional linear warm-up (lr_warmup,
    from lr_warmup_from) "constant" (lr), "linear" or "cosine" (from lr to lr_final,
    reached at the end of the run: lr * (1 - update / num_updates) by default), or
    "adaptive_kl" (x or / 1.5 when the update's KL leaves [desired_kl/2,
    2*desired_kl], kept in [lr_min, lr_max]; no warm-up)."""
    clip_schedule: str = static("constant", one_of(CLIP_SCHEDULES))
    """Clip range: "constant" or "linear" (from clip_eps at the first update to
    clip_eps_final at the last)."""
    ent_schedule: str = static("constant", one_of(ENT_SCHEDULES))
    """Entropy coefficient, stepwise per update, like lr_schedule: after an optional
    warm-up (ent_warmup, from ent_warmup_from) "constant" (ent_coef), "linear" or
    "cosine" (from ent_coef to ent_coef_final at the end of the run)."""
    advantage_norm: str = static("minibatch", one_of(ADVANTAGE_NORMS))
    """Advantage normalisation to zero mean, unit std: per "minibatch", over the whole
    "batch" once per update, or "off"."""
    clip_value_loss: bool = static(True, SWITCH)
    """Clip the value prediction to old_value +- vf_clip_eps (PPO2/CleanRL style)."""
    state_dependent_std: bool = static(False, SWITCH)
    """Continuous actions: the Gaussian's std from a second policy head on the actor's
    features, std = softplus(head) + MIN_STD (0.001, as Brax's PPO and gymnax-blines), instead of
    one learned log-std per action dimension that ignores the state (the default)."""
    bootstrap_truncation: bool = static(True, SWITCH)
    """Bootstrap the value of the final observation where a time limit cuts an episode
    (correct for a Markov state). False treats a time-limit end as a termination, as
    the older baselines (gymnax-blines, PureJaxRL) do: the value then also encodes the
    time left, which the observation does not show; some of their published results
    depend on it (MountainCar)."""
    normalize_obs: bool = static(False, SWITCH)
    """Normalise observations by running mean/std (learner state; clipped to +-obs_clip)."""
    normalize_reward: bool = static(False, SWITCH)
    """Divide rewards by the running std of the discounted return (clipped to +-reward_clip)."""
    continuous_dist: str = static("gaussian", one_of(CONTINUOUS_DISTS))
    """Continuous policy: "gaussian" (sample clipped to the action bounds at the env) or
    "tanh_gaussian" (sample squashed by tanh into the bounds)."""
    value_target: str = static("mse", one_of(VALUE_TARGETS))
    """What the critic regresses (purejaxppo.core.value_targets): "mse" (the value, by
    squared error), "symlog" (symlog(value) = sign * log(1 + |value|), robust to large
    returns), or "hl_gauss" (a categorical critic over value_bins bins on [value_min,
    value_max] trained by cross-entropy to HL-Gauss targets; needs
    clip_value_loss=False). Value clipping acts in the critic's own space."""
    value_bins: int = static(51, POSITIVE_INT)
    """Bins of the "hl_gauss" critic (at least 2; unused by the other targets)."""
    popart: bool = static(False, SWITCH)
    """PopArt: the "mse" critic predicts values normalised by running statistics of
    the returns (EMA step popart_beta, in the train state), its last layer rescaled at
    each statistics update so that its unnormalised outputs are preserved."""
    matmul_precision: str = static("float32", one_of(MATMUL_PRECISIONS))
    """Precision of the network's float32 matmuls and convolutions (every forward pass:
    rollout, learning, evaluation, exported policies): "float32" (full; XLA's HIGHEST),
    "tensorfloat32" (TF32 on NVIDIA Ampere and later; HIGH) or "default" (XLA's own
    choice: TF32 on recent NVIDIA GPUs, one bfloat16 pass on TPUs). float32 by default
    because PPO's ratio exp(log p - log p_old) amplifies rounding: TF32's 10-bit
    mantissa makes the first minibatch's ratio differ from 1 and has broken RL
    training in practice, while PPO's small MLPs gain little speed from it. The
    CPU computes float32 whatever is asked."""

    # ---- traced hyperparameters (vmappable) ----------------------------------------
    lr: float = traced(2.5e-4, POSITIVE)
    """Adam learning rate: the value after the warm-up, from which the linear and
    cosine schedules decay (the initial value under adaptive_kl)."""
    lr_final: float = traced(0.0, NON_NEGATIVE)
    """Learning rate the "linear" and "cosine" schedules reach at the end of the run."""
    lr_warmup: float = traced(0.0, UNIT_INTERVAL)
    """Fraction of the updates spent warming the learning rate up linearly from
    lr_warmup_from to lr (0: no warm-up); the decay runs over the rest."""
    lr_warmup_from: float = traced(0.0, NON_NEGATIVE)
    """Learning rate at the first update of the warm-up (used when lr_warmup > 0)."""
    gamma: float = traced(0.99, UNIT_INTERVAL)
    """Discount factor, in [0, 1]."""
    gae_lambda: float = traced(0.95, UNIT_INTERVAL)
    """GAE lambda, in [0, 1]."""
    clip_eps: float = traced(0.2, POSITIVE)
    """Policy ratio clip range."""
    vf_clip_eps: float = traced(0.2, POSITIVE)
    """Value clip range (used when clip_value_loss)."""
    vf_coef: float = traced(0.5, NON_NEGATIVE)
    """Value loss coefficient."""
    ent_coef: float = traced(0.01, FINITE)
    """Entropy bonus coefficient (the value after the warm-up, see ent_schedule)."""
    ent_coef_final: float = traced(0.0, FINITE)
    """Entropy coefficient the "linear" and "cosine" ent_schedule reach at the end."""
    ent_warmup: float = traced(0.0, UNIT_INTERVAL)
    """Fraction of the updates spent ramping ent_coef linearly from ent_warmup_from."""
    ent_warmup_from: float = traced(0.0, FINITE)
    """Entropy coefficient at the first update of the warm-up (when ent_warmup > 0)."""
    max_grad_norm: float = traced(0.5, CLIP_BOUND)
    """Global gradient-norm clip (inf disables it)."""
    adam_eps: float = traced(1e-5, POSITIVE)
    """Adam epsilon."""
    log_std_init: float = traced(0.0, FINITE)
    """Initial log standard deviation of the Gaussian policy (continuous actions); with
    state_dependent_std, the std the head starts at near every state (> log MIN_STD)."""
    obs_clip: float = traced(10.0, CLIP_BOUND)
    """Clip normalised observations to +-obs_clip (used when normalize_obs; inf: no clip)."""
    reward_clip: float = traced(10.0, CLIP_BOUND)
    """Clip scaled rewards to +-reward_clip (used when normalize_reward; inf: no clip)."""
    reward_scale: float = traced(1.0, FINITE_POSITIVE)
    """Constant multiplier on the rewards the learner sees (after normalize_reward)."""
    clip_eps_final: float = traced(0.0, NON_NEGATIVE)
    """Clip range reached at the last update when clip_schedule="linear"."""
    kl_beta_init: float = traced(1.0, FINITE_POSITIVE)
    """Initial KL-penalty coefficient beta (objectives with kl_penalty); adapted per update."""
    desired_kl: float = traced(0.01, FINITE_POSITIVE)
    """Target KL(old || new) per update for the adaptive beta and the adaptive_kl lr."""
    target_kl: float | None = traced(None, EARLY_STOP, optional=True)
    """KL early stopping: skip the rest of an update's minibatches and epochs once a
    minibatch's approximate KL exceeds 1.5 * target_kl; None disables it."""
    value_min: float = traced(-100.0, FINITE)
    """Lower end of the "hl_gauss" critic's bins, in the learner's reward units (after
    normalize_reward and reward_scale); returns below it count as value_min."""
    value_max: float = traced(100.0, FINITE)
    """Upper end of the "hl_gauss" critic's bins (returns above count as value_max)."""
    hl_gauss_sigma: float = traced(0.75, FINITE_POSITIVE)
    """Std of the HL-Gauss target, in bin widths (0.75: Farebrother et al. 2024)."""
    popart_beta: float = traced(0.01, STEP_SIZE)
    """Step of PopArt's moving averages of the returns, once per update (bias-corrected,
    so the first update's returns set them)."""
    lr_min: float = traced(1e-6, FINITE_POSITIVE)
    """Lower bound of the adaptive_kl learning rate."""
    lr_max: float = traced(1e-2, FINITE_POSITIVE)
    """Upper bound of the adaptive_kl learning rate."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Config:
        # The dataclass __init__ would reject an old name with a generic TypeError;
        # this runs first, so the error names the new field.
        check_renamed(kwargs)
        return super().__new__(cls)

    def __post_init__(self):
        for f in _FIELDS:
            value = getattr(self, f.name)
            if f.metadata["kind"] == "traced":
                value = _canonical_traced(f.name, value, **_traced_meta(f))
            elif f.metadata["convert"] is not None:
                value = f.metadata["convert"](value)
            object.__setattr__(self, f.name, value)
        _check_traced_shapes(self)
        for f in _FIELDS:
            if f.metadata["kind"] == "static":
                for rule in f.metadata["rules"]:
                    rule.check(f.name, getattr(self, f.name))
        for check in CROSS_FIELD_CHECKS:
            check(self)

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
        check_renamed(changes)
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
        check_renamed(overrides)
        unknown = [k for k in overrides if k not in FIELD_NAMES]
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
        for name in FIELD_NAMES:
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
        check_renamed(data)
        unknown = [k for k in data if k not in FIELD_NAMES]
        if unknown:
            close = {k: difflib.get_close_matches(k, FIELD_NAMES, n=1) for k in unknown}
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


# `__new__` (which refuses renamed fields) would hide the dataclass signature from
# help() and IDEs; show the fields instead.
Config.__signature__ = inspect.signature(Config.__init__).replace(
    parameters=list(inspect.signature(Config.__init__).parameters.values())[1:]
)

# ---- derived from the field metadata ---------------------------------------------------

_FIELDS = dataclasses.fields(Config)
FIELD_NAMES = tuple(f.name for f in _FIELDS)
# Traced hyperparameters: pytree leaves, canonicalised to float32 on the host.
TRACED_FIELDS = tuple(f.name for f in _FIELDS if f.metadata["kind"] == "traced")
# Static fields: the pytree's treedef (hashable; changing one recompiles).
STATIC_FIELDS = tuple(f.name for f in _FIELDS if f.metadata["kind"] == "static")
# Traced fields that may also be None, which switches their feature off. None is an empty
# pytree node, so None versus a number is a static difference (another program).
OPTIONAL_TRACED = tuple(f.name for f in _FIELDS if f.metadata.get("optional"))


def _traced_meta(f: dataclasses.Field) -> dict[str, Any]:
    return {"rule": f.metadata["rules"][0], "optional": f.metadata["optional"]}


def field_kind(name: str) -> str:
    """ "static" or "traced": how a Config field enters the compiled program."""
    return Config.__dataclass_fields__[name].metadata["kind"]


def _plain_float(v) -> float | list[float]:
    """float32 values as the shortest decimals that read back to the same float32
    (0.00025, not 0.0002500000118743628)."""
    arr = np.asarray(v, np.float32)
    if arr.ndim:
        return [float(str(x)) for x in arr.ravel()]
    return float(str(arr[()]))


def grid_points(**grids: Sequence[float]) -> list[dict[str, float]]:
    """The Cartesian product of `grids` as a list of {field: value} dicts."""
    check_renamed(grids)
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
    """Names of static fields whose values differ between two configs (and optional
    traced fields that are None in one and a number in the other)."""
    return [
        name
        for name in FIELD_NAMES
        if (name in STATIC_FIELDS and not _same(getattr(a, name), getattr(b, name)))
        or (name in OPTIONAL_TRACED and (getattr(a, name) is None) != (getattr(b, name) is None))
    ]


def _same(x, y) -> bool:
    try:
        return bool(x == y)
    except Exception:
        return x is y


def _canonical_traced(name: str, value, rule: Rule, optional: bool):
    """A traced value as a float32 array, checked elementwise against `rule`."""
    if isinstance(value, jax.core.Tracer):
        return value  # built inside a transformation: nothing to check on the host
    if isinstance(value, list | tuple):
        raise TypeError(
            f"Config.{name}={value!r}: a traced hyperparameter takes one number; to try "
            f"several use Config.sweep(config, {name}={list(value)!r})"
        )
    if value is None and optional:
        return None
    if isinstance(value, bool) or value is None:
        raise TypeError(f"Config.{name}={value!r}: must be a number")
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise TypeError(f"Config.{name}={value!r}: must be a number") from None
    bad = ~np.asarray(rule.ok(arr)) | np.isnan(arr)
    if np.any(bad):
        shown = value if arr.ndim == 0 else arr[bad].tolist()
        raise rule.error(f"Config.{name}={shown!r}: {rule.message(shown)}")
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


# ---- cross-field rules (run after every field passed its own) --------------------------


def minibatches_divide_batch(c: Config) -> None:
    if c.batch_size % c.num_minibatches:
        raise ValueError(
            f"Config.num_minibatches={c.num_minibatches}: must divide the batch "
            f"num_envs*num_steps={c.num_envs}*{c.num_steps}={c.batch_size}"
        )


def sequence_minibatches_divide_envs(c: Config) -> None:
    if c.recurrent is not None and c.num_envs % c.num_minibatches:
        raise ValueError(
            f"Config.num_minibatches={c.num_minibatches}: with recurrent={c.recurrent!r} "
            f"minibatches are whole env sequences, so it must divide num_envs={c.num_envs}"
        )


def at_least_one_batch(c: Config) -> None:
    if c.total_timesteps < c.batch_size:
        raise ValueError(
            f"Config.total_timesteps={c.total_timesteps}: must be at least one batch "
            f"(num_envs*num_steps={c.batch_size})"
        )


def critic_widths_need_separate_torsos(c: Config) -> None:
    if c.critic_hidden_sizes is not None and c.shared_torso:
        raise ValueError(
            f"Config.critic_hidden_sizes={c.critic_hidden_sizes!r}: needs separate torsos "
            "(shared_torso=False); a shared torso has one set of widths, hidden_sizes"
        )


def cnn_layers_agree(c: Config) -> None:
    for name in ("cnn_kernels", "cnn_strides"):
        value = getattr(c, name)
        if value is None:
            continue
        if c.cnn_channels is None:
            raise ValueError(
                f"Config.{name}={value!r}: needs cnn_channels (the layers it describes); "
                "with cnn_channels=None the CNN is chosen by image size"
            )
        if len(value) != len(c.cnn_channels):
            raise ValueError(
                f"Config.{name}={value!r}: must have one entry per conv layer, "
                f"cnn_channels={c.cnn_channels!r} has {len(c.cnn_channels)}"
            )


def shared_torso_reads_one_input(c: Config) -> None:
    if c.shared_torso and _as_keys(c.policy_obs_key) != _as_keys(c.value_obs_key):
        raise ValueError(
            f"Config.value_obs_key={c.value_obs_key!r}: differs from policy_obs_key="
            f"{c.policy_obs_key!r}, which needs separate torsos (shared_torso=False); a "
            "shared torso would feed the critic's inputs to the policy"
        )


def _as_keys(v: Any) -> tuple[str, ...] | None:
    return (v,) if isinstance(v, str) else v


def _host_values(*values) -> bool:
    return not any(isinstance(v, jax.core.Tracer) for v in values)


def lr_min_at_most_lr_max(c: Config) -> None:
    if _host_values(c.lr_min, c.lr_max) and np.any(np.asarray(c.lr_min) > np.asarray(c.lr_max)):
        raise ValueError(f"Config.lr_min={_fmt(c.lr_min)}: must be <= lr_max={_fmt(c.lr_max)}")


def adaptive_lr_within_bounds(c: Config) -> None:
    lo, hi, lr = c.lr_min, c.lr_max, c.lr
    if c.lr_schedule != "adaptive_kl" or not _host_values(lo, hi, lr):
        return
    if np.any((np.asarray(lr) < np.asarray(lo)) | (np.asarray(lr) > np.asarray(hi))):
        raise ValueError(
            f"Config.lr={_fmt(lr)}: with lr_schedule='adaptive_kl' the initial lr must "
            f"lie in [lr_min, lr_max] = [{_fmt(lo)}, {_fmt(hi)}]"
        )


def adaptive_lr_has_no_warmup(c: Config) -> None:
    if c.lr_schedule != "adaptive_kl" or not _host_values(c.lr_warmup):
        return
    if np.any(np.asarray(c.lr_warmup) > 0):
        raise ValueError(
            f"Config.lr_warmup={_fmt(c.lr_warmup)}: lr_schedule='adaptive_kl' adapts the "
            "carried lr from the first update and has no warm-up; set lr_warmup=0 or use "
            "lr_schedule 'constant', 'linear' or 'cosine'"
        )


def value_bins_span_a_range(c: Config) -> None:
    if c.value_target != "hl_gauss":
        return
    if c.value_bins < 2:
        raise ValueError(
            f"Config.value_bins={c.value_bins}: value_target='hl_gauss' needs at least 2 bins"
        )
    if c.clip_value_loss:
        raise ValueError(
            "Config.clip_value_loss=True: value_target='hl_gauss' trains a categorical "
            "critic by cross-entropy, which has no clipped form; set clip_value_loss=False"
        )
    lo, hi = c.value_min, c.value_max
    if _host_values(lo, hi) and np.any(np.asarray(lo) >= np.asarray(hi)):
        raise ValueError(
            f"Config.value_min={_fmt(lo)}: must be < value_max={_fmt(hi)} (the range of "
            "the hl_gauss bins)"
        )


def popart_needs_the_mse_critic(c: Config) -> None:
    if c.popart and c.value_target != "mse":
        raise ValueError(
            f"Config.popart=True: normalises the targets of the 'mse' critic, but "
            f"value_target={c.value_target!r} has its own scale handling; use one of them"
        )


def state_dependent_std_starts_above_its_floor(c: Config) -> None:
    if not c.state_dependent_std or not _host_values(c.log_std_init):
        return
    if np.any(np.asarray(c.log_std_init) <= math.log(MIN_STD)):
        raise ValueError(
            f"Config.log_std_init={_fmt(c.log_std_init)}: with state_dependent_std=True the "
            f"std is softplus(head) + {MIN_STD}, so it must start above that floor "
            f"(log_std_init > log {MIN_STD} = {math.log(MIN_STD):.3f})"
        )


def env_registered(c: Config) -> None:
    """The env id is in a registry (or the object has the env API); nothing is built.
    The checks that need the built env (its action space) run in core.setup."""
    from purejaxppo.envs.registry import check_env_id  # keeps `import config` light

    check_env_id(c.env, action_repeat=c.action_repeat, brax_backend=c.brax_backend)


CROSS_FIELD_CHECKS: tuple[Callable[[Config], None], ...] = (
    minibatches_divide_batch,
    sequence_minibatches_divide_envs,
    at_least_one_batch,
    critic_widths_need_separate_torsos,
    cnn_layers_agree,
    shared_torso_reads_one_input,
    lr_min_at_most_lr_max,
    adaptive_lr_within_bounds,
    adaptive_lr_has_no_warmup,
    value_bins_span_a_range,
    popart_needs_the_mse_critic,
    state_dependent_std_starts_above_its_floor,
    env_registered,
)


def env_options(c: Config) -> dict[str, Any]:
    """The Config fields that shape the environment, as keyword arguments of resolve_env."""
    return {
        "episode_length": c.episode_length,
        "action_repeat": c.action_repeat,
        "brax_backend": c.brax_backend,
    }


# ---- pytree: traced fields are the leaves, static fields the treedef ------------------


def _flatten(c: Config):
    return tuple(getattr(c, n) for n in TRACED_FIELDS), tuple(getattr(c, n) for n in STATIC_FIELDS)


def _unflatten(static, traced) -> Config:
    # No validation here: leaves may be tracers or batched arrays inside transforms.
    c = object.__new__(Config)
    for name, v in zip(STATIC_FIELDS, static, strict=True):
        object.__setattr__(c, name, v)
    for name, v in zip(TRACED_FIELDS, traced, strict=True):
        object.__setattr__(c, name, v)
    return c


jax.tree_util.register_pytree_node(Config, _flatten, _unflatten)


# ---- documentation derived from the fields --------------------------------------------


def attribute_docs(cls: type) -> dict[str, str]:
    """{field name: attribute docstring} of a dataclass, read from its source (the
    string literal right after each annotated field), whitespace collapsed."""
    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    docs = {}
    for stmt, nxt in itertools.pairwise(body):
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[stmt.target.id] = " ".join(inspect.cleandoc(nxt.value.value).split())
    return docs


def _markdown_default(v: Any) -> str:
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, float):
        return f"{v:g}"
    return repr(v)


def markdown_table() -> str:
    """The README's table of Config fields: name, static/traced, default, docstring."""
    docs = attribute_docs(Config)
    rows = ["| Field | Kind | Default | Meaning |", "|---|---|---|---|"]
    for f in _FIELDS:
        doc = docs[f.name].replace("|", "\\|")
        rows.append(
            f"| `{f.name}` | {field_kind(f.name)} | `{_markdown_default(f.default)}` | {doc} |"
        )
    return "\n".join(rows) + "\n"
