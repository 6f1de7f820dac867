"""What the critic predicts and how it learns it: `Config.value_target` and `popart`.

The critic's head emits a prediction in its own space; `critic_value` maps it to a
value in the learner's reward units (what GAE, bootstrapping and the metrics use), and
`critic_loss` regresses it onto the returns in that same space:

- "mse" (default): the head is the value; 0.5 * squared error (value clipping as
  configured). With `popart`, the head predicts the value normalised by running
  statistics of the returns, value = mean + std * head (van Hasselt et al. 2016,
  "Learning values across many orders of magnitude"), and the loss is the squared
  error of the normalised values.
- "symlog": the head predicts symlog(value), symlog(x) = sign(x) * log(1 + |x|), and
  regresses symlog(return) (DreamerV3's squashing): returns of any scale give targets
  of a few units.
- "hl_gauss": a categorical critic over `value_bins` fixed bins on [value_min,
  value_max]; the value is the expectation of its softmax over the bin centres and the
  loss is the cross-entropy to the HL-Gauss target, the mass of N(return, sigma^2) in
  each bin with sigma = hl_gauss_sigma * bin width (Imani & White 2018; Farebrother et
  al. 2024, "Stop regressing").

Value clipping (`clip_value_loss`) acts in the critic's own space: on the value for
"mse", on symlog values for "symlog", on normalised values with PopArt (so
vf_clip_eps is a scale-free range there). A categorical critic has no clipped form;
`Config` refuses clip_value_loss with "hl_gauss".

PopArt's statistics live in the train state (`TrainState.value_stats`), change at one
point, once per update after GAE (`update_popart`), merge across data-parallel shards,
and travel with checkpoints. When they change, the value head's last layer is rescaled
so that every unnormalised output stays what it was (`preserve_outputs`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from purejaxppo.config import Config
from purejaxppo.scale.collectives import global_mean

# The normalised-target scale is kept within [sqrt(MIN_VAR), sqrt(MAX_VAR)]: a constant
# return (zero variance) must not divide by zero or blow the head's weights up.
POPART_MIN_VAR = 1e-4
POPART_MAX_VAR = 1e12


@jax.custom_jvp
def symlog(x: jax.Array) -> jax.Array:
    """sign(x) * log(1 + |x|): identity-like near 0, logarithmic far from it. Its
    derivative is 1 / (1 + |x|) everywhere, 1 at 0 (the product rule through sign and
    abs would give 0 there)."""
    return jnp.sign(x) * jnp.log1p(jnp.abs(x))


@symlog.defjvp
def _symlog_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    return symlog(x), dx / (1.0 + jnp.abs(x))


@jax.custom_jvp
def symexp(x: jax.Array) -> jax.Array:
    """The inverse of `symlog`: sign(x) * (exp(|x|) - 1); derivative exp(|x|)."""
    return jnp.sign(x) * jnp.expm1(jnp.abs(x))


@symexp.defjvp
def _symexp_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    return symexp(x), dx * jnp.exp(jnp.abs(x))


# ---- HL-Gauss ------------------------------------------------------------------------


def bin_edges(config: Config) -> jax.Array:
    """[value_bins + 1] evenly spaced edges from value_min to value_max."""
    fractions = jnp.linspace(0.0, 1.0, config.value_bins + 1, dtype=jnp.float32)
    return config.value_min + (config.value_max - config.value_min) * fractions


def bin_centres(config: Config) -> jax.Array:
    edges = bin_edges(config)
    return 0.5 * (edges[:-1] + edges[1:])


def hl_gauss_target(returns: jax.Array, edges: jax.Array, sigma: jax.Array) -> jax.Array:
    """[..., bins] probabilities: the mass of N(return, sigma^2) falling in each bin,
    renormalised to the mass inside [edges[0], edges[-1]] (returns outside are first
    clipped into that range). returns: [...]; edges: [bins + 1]."""
    y = jnp.clip(returns, edges[0], edges[-1])[..., None]
    cdf = jax.scipy.special.ndtr((edges - y) / sigma)  # [..., bins + 1]
    mass = cdf[..., 1:] - cdf[..., :-1]
    return mass / (cdf[..., -1:] - cdf[..., :1])


def hl_gauss_sigma(config: Config) -> jax.Array:
    """The target Gaussian's std: hl_gauss_sigma bin widths."""
    width = (config.value_max - config.value_min) / config.value_bins
    return config.hl_gauss_sigma * width


# ---- PopArt --------------------------------------------------------------------------


class PopArtStats(NamedTuple):
    """Exponential moving averages of the returns and their squares, with the EMA's
    total weight for bias correction (weight 0: no statistics yet)."""

    first: jax.Array  # float32 scalar
    second: jax.Array  # float32 scalar
    weight: jax.Array  # float32 scalar: 1 - (1 - popart_beta)^updates


class ValueScale(NamedTuple):
    """value = mean + std * (normalised value)."""

    mean: jax.Array
    std: jax.Array


def init_value_stats(config: Config) -> Any:
    """The train state's value statistics: PopArtStats with popart, else () (no
    leaves, so other programs and checkpoints are unchanged)."""
    if not config.popart:
        return ()
    zero = jnp.zeros((), jnp.float32)
    return PopArtStats(zero, zero, zero)


def value_scale(stats: Any) -> Any:
    """The (mean, std) that `stats` stand for: the identity scale (0, 1) before any
    update; () without PopArt."""
    if not isinstance(stats, PopArtStats):
        return ()
    seen = stats.weight > 0
    weight = jnp.where(seen, stats.weight, 1.0)
    mean = stats.first / weight
    var = jnp.clip(stats.second / weight - mean**2, POPART_MIN_VAR, POPART_MAX_VAR)
    return ValueScale(jnp.where(seen, mean, 0.0), jnp.where(seen, jnp.sqrt(var), 1.0))


def update_popart(
    stats: PopArtStats, returns: jax.Array, beta: jax.Array, axis_name: str | None = None
) -> PopArtStats:
    """Fold one update's value targets into the EMAs (over every shard's rows)."""
    mean = global_mean(returns, axis_name)
    second = global_mean(returns**2, axis_name)
    keep = 1.0 - beta
    return PopArtStats(
        first=keep * stats.first + beta * mean,
        second=keep * stats.second + beta * second,
        weight=keep * stats.weight + beta,
    )


def preserve_outputs(params: Any, old: ValueScale, new: ValueScale) -> Any:
    """`params` with the value head rescaled so that old.mean + old.std * head(x) ==
    new.mean + new.std * head'(x) for every input x (PopArt's "preserving outputs"):
    kernel' = kernel * old.std / new.std, bias' = (old.std * bias + old.mean -
    new.mean) / new.std."""
    head = params["params"]["value_head"]
    ratio = old.std / new.std
    rescaled = {
        "kernel": head["kernel"] * ratio,
        "bias": (old.std * head["bias"] + old.mean - new.mean) / new.std,
    }
    inner = {**params["params"], "value_head": rescaled}
    return {**params, "params": inner}


def renormalize(
    config: Config, params: Any, stats: Any, returns: jax.Array, axis_name: str | None = None
) -> tuple[Any, Any, Any]:
    """The one point where PopArt's statistics change, after GAE: (params with the
    value head rescaled, new statistics, their ValueScale). Without popart: (params,
    stats, ()) unchanged."""
    if not config.popart:
        return params, stats, ()
    new_stats = update_popart(stats, returns, config.popart_beta, axis_name)
    old, new = value_scale(stats), value_scale(new_stats)
    return preserve_outputs(params, old, new), new_stats, new


# ---- the critic's prediction in value units, and its loss ------------------------------


def critic_value(config: Config, head: jax.Array, scale: Any = ()) -> jax.Array:
    """The value [...] that the critic's head output means: `head` [...] for "mse"
    (mean + std * head with PopArt's `scale`) and "symlog" (symexp of it), [...,
    value_bins] logits for "hl_gauss" (the expected bin centre)."""
    if config.value_target == "symlog":
        return symexp(head)
    if config.value_target == "hl_gauss":
        return jax.nn.softmax(head, axis=-1) @ bin_centres(config)
    if isinstance(scale, ValueScale):
        return scale.mean + scale.std * head
    return head


def value_loss(
    pred: jax.Array, old: jax.Array, target: jax.Array, vf_clip_eps, clip: bool
) -> jax.Array:
    """0.5 * mean squared error; with `clip`, the pessimistic max of the plain and the
    clipped (old +- vf_clip_eps) prediction's errors."""
    squared = (pred - target) ** 2
    if clip:
        clipped = old + jnp.clip(pred - old, -vf_clip_eps, vf_clip_eps)
        squared = jnp.maximum(squared, (clipped - target) ** 2)
    return 0.5 * jnp.mean(squared)


def critic_loss(
    config: Config,
    head: jax.Array,
    old_value: jax.Array,
    returns: jax.Array,
    scale: Any = (),
) -> jax.Array:
    """The value loss of the critic's head output against `returns` [N] (value units),
    with `old_value` [N] the rollout's values for clipping (see the module docstring)."""
    clip, eps = config.clip_value_loss, config.vf_clip_eps
    if config.value_target == "symlog":
        return value_loss(head, symlog(old_value), symlog(returns), eps, clip)
    if config.value_target == "hl_gauss":
        target = hl_gauss_target(returns, bin_edges(config), hl_gauss_sigma(config))
        log_probs = jax.nn.log_softmax(head, axis=-1)
        return -jnp.mean(jnp.sum(jax.lax.stop_gradient(target) * log_probs, axis=-1))
    if isinstance(scale, ValueScale):
        old_value = (old_value - scale.mean) / scale.std
        returns = (returns - scale.mean) / scale.std
    return value_loss(head, old_value, returns, eps, clip)
