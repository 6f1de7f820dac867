"""Action distributions: Categorical (optionally masked), MultiCategorical, diagonal
Gaussian and tanh-squashed Gaussian.

Each has log_prob / entropy / sample / mode / kl. They are NamedTuples, so they are
pytrees and can cross jit and vmap boundaries. Batch dimensions lead; the event
dimension (Gaussian) is last and summed over.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

_LOG_2PI = math.log(2.0 * math.pi)
# Logit of an illegal action. Finite, so that log-probs stay finite and an illegal
# action's term p * log p in the entropy and KL is exactly 0 * finite = 0 (with -inf it
# would be NaN); exp(MASKED_LOGIT - max) underflows to 0, so it is never sampled.
MASKED_LOGIT = -1e9
# Gauss-Hermite rule for E[f(u)], u ~ N(m, s^2): sum_i w_i / sqrt(pi) * f(m + sqrt(2) s x_i).
_GH_NODES, _GH_WEIGHTS = (np.asarray(a, np.float32) for a in np.polynomial.hermite.hermgauss(16))
_GH_WEIGHTS = _GH_WEIGHTS / np.float32(math.sqrt(math.pi))


class Categorical(NamedTuple):
    """Categorical over the last axis of `logits` ([..., num_actions])."""

    logits: jax.Array

    @property
    def log_probs(self) -> jax.Array:
        return jax.nn.log_softmax(self.logits, axis=-1)

    def log_prob(self, action: jax.Array) -> jax.Array:
        """action: [...] int -> [...] float32."""
        idx = jnp.expand_dims(action.astype(jnp.int32), -1)
        return jnp.take_along_axis(self.log_probs, idx, axis=-1)[..., 0]

    def entropy(self) -> jax.Array:
        logp = self.log_probs
        return -jnp.sum(jnp.exp(logp) * logp, axis=-1)

    def sample(self, key: jax.Array) -> jax.Array:
        """One sample per batch element from a single key."""
        return jax.random.categorical(key, self.logits, axis=-1)

    def mode(self) -> jax.Array:
        return jnp.argmax(self.logits, axis=-1)

    def kl(self, other: Categorical) -> jax.Array:
        """KL(self || other)."""
        logp, logq = self.log_probs, other.log_probs
        return jnp.sum(jnp.exp(logp) * (logp - logq), axis=-1)


def mask_logits(logits: jax.Array, legal: jax.Array) -> jax.Array:
    """Logits with the illegal entries (legal == False) set to MASKED_LOGIT: the
    distribution then has support on the legal actions only, and its log_prob,
    entropy and KL count them alone."""
    return jnp.where(legal, logits, MASKED_LOGIT)


class MultiCategorical(NamedTuple):
    """Independent Categoricals, one per sub-action (MultiDiscrete actions).

    `logits` [..., K, N] with N the largest sub-action size; the smaller sub-actions'
    padding is masked (`mask_logits`), so it is never sampled and adds nothing to the
    entropy or KL. Actions are int [..., K]; log_prob, entropy and KL sum over K.
    """

    logits: jax.Array

    @property
    def parts(self) -> Categorical:
        return Categorical(self.logits)

    def log_prob(self, action: jax.Array) -> jax.Array:
        return jnp.sum(self.parts.log_prob(action), axis=-1)

    def entropy(self) -> jax.Array:
        return jnp.sum(self.parts.entropy(), axis=-1)

    def sample(self, key: jax.Array) -> jax.Array:
        return jax.random.categorical(key, self.logits, axis=-1)

    def mode(self) -> jax.Array:
        return jnp.argmax(self.logits, axis=-1)

    def kl(self, other: MultiCategorical) -> jax.Array:
        return jnp.sum(self.parts.kl(other.parts), axis=-1)


class DiagGaussian(NamedTuple):
    """Diagonal Gaussian; `mean` [..., D], `log_std` broadcastable to it."""

    mean: jax.Array
    log_std: jax.Array

    def log_prob(self, action: jax.Array) -> jax.Array:
        """action: [..., D] -> [...]."""
        z = (action - self.mean) * jnp.exp(-self.log_std)
        return jnp.sum(-0.5 * z**2 - self.log_std - 0.5 * _LOG_2PI, axis=-1)

    def entropy(self) -> jax.Array:
        log_std = jnp.broadcast_to(self.log_std, self.mean.shape)
        return jnp.sum(log_std + 0.5 * (1.0 + _LOG_2PI), axis=-1)

    def sample(self, key: jax.Array) -> jax.Array:
        noise = jax.random.normal(key, self.mean.shape, self.mean.dtype)
        return self.mean + jnp.exp(self.log_std) * noise

    def mode(self) -> jax.Array:
        return self.mean

    def kl(self, other: DiagGaussian) -> jax.Array:
        """KL(self || other), summed over the event dimension."""
        var_ratio = jnp.exp(2.0 * (self.log_std - other.log_std))
        mean_term = ((self.mean - other.mean) * jnp.exp(-other.log_std)) ** 2
        per_dim = 0.5 * (var_ratio + mean_term - 1.0) - (self.log_std - other.log_std)
        return jnp.sum(jnp.broadcast_to(per_dim, self.mean.shape), axis=-1)


def _log_dtanh(u: jax.Array) -> jax.Array:
    """log(1 - tanh(u)^2) = log(d tanh(u) / du), computed without cancellation."""
    return 2.0 * (math.log(2.0) - u - jax.nn.softplus(-2.0 * u))


class TanhGaussian(NamedTuple):
    """Diagonal Gaussian over a pre-squash variable u, with the env action
    y = low + (tanh(u) + 1) * (high - low) / 2 inside the bounds.

    The learner's action is u itself: rollouts store u, so log-probs never need the
    unstable atanh of a saturated action. `log_prob(u)` is the density of y at
    squash(u) (change of variables: the Gaussian log-density minus log|dy/du|), and the
    entropy of y is estimated with a 16-point Gauss-Hermite rule per dimension, which is
    deterministic and differentiable (its error per dimension is ~1e-7 at std 0.7 and
    ~3e-3 at std 2, growing and biased low for wider Gaussians). The KL equals the
    Gaussians' KL (a bijection preserves it).
    """

    mean: jax.Array  # [..., D]
    log_std: jax.Array
    low: jax.Array  # [D]
    high: jax.Array  # [D]

    @property
    def base(self) -> DiagGaussian:
        """The Gaussian of the pre-squash variable."""
        return DiagGaussian(self.mean, self.log_std)

    @property
    def _log_half_range(self) -> jax.Array:
        return jnp.log(0.5 * (self.high - self.low))

    def squash(self, u: jax.Array) -> jax.Array:
        """Env action for the pre-squash sample u."""
        return self.low + (jnp.tanh(u) + 1.0) * (0.5 * (self.high - self.low))

    def log_prob(self, u: jax.Array) -> jax.Array:
        """u: [..., D] pre-squash sample -> log density of squash(u) [...]."""
        log_det = jnp.sum(_log_dtanh(u) + self._log_half_range, axis=-1)
        return self.base.log_prob(u) - log_det

    def entropy(self) -> jax.Array:
        std = jnp.broadcast_to(jnp.exp(self.log_std), self.mean.shape)
        nodes = self.mean[..., None] + math.sqrt(2.0) * std[..., None] * _GH_NODES
        expected_log_det = jnp.sum(_log_dtanh(nodes) * _GH_WEIGHTS, axis=-1)  # [..., D]
        return self.base.entropy() + jnp.sum(expected_log_det + self._log_half_range, axis=-1)

    def sample(self, key: jax.Array) -> jax.Array:
        """A pre-squash sample u (apply `squash` for the env action)."""
        return self.base.sample(key)

    def mode(self) -> jax.Array:
        """The pre-squash mean (its squash is the usual deterministic action)."""
        return self.mean

    def kl(self, other: TanhGaussian) -> jax.Array:
        return self.base.kl(other.base)


Distribution = Categorical | MultiCategorical | DiagGaussian | TanhGaussian


def env_action(dist: Distribution, action: jax.Array) -> jax.Array:
    """The action sent to the env for a learner's action (squashed for TanhGaussian)."""
    return dist.squash(action) if isinstance(dist, TanhGaussian) else action


def noise_rows(discrete: bool, keys: jax.Array, event_shape: int | tuple[int, ...]) -> jax.Array:
    """The randomness of one draw per row: Gumbel [B, *logits shape] for a
    (Multi)Categorical, standard normal [B, action_dim] for a Gaussian; row i from
    keys[i]."""
    draw = jax.random.gumbel if discrete else jax.random.normal
    shape = (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)
    return jax.vmap(lambda k: draw(k, shape, jnp.float32))(keys)


def _is_categorical(dist: Distribution) -> bool:
    return isinstance(dist, Categorical | MultiCategorical)


def sample_from_noise(dist: Distribution, noise: jax.Array) -> jax.Array:
    """A sample given its noise from `noise_rows` (Gumbel-max / reparameterised)."""
    if _is_categorical(dist):
        return jnp.argmax(dist.logits + noise, axis=-1)
    return dist.mean + jnp.exp(dist.log_std) * noise


def sample_rows(dist: Distribution, keys: jax.Array) -> jax.Array:
    """One independent draw per leading row, row i from keys[i] (keys: [B]).

    Per-row keys make a row's sample independent of how many rows are drawn
    together, so results do not depend on batching or sharding of envs.
    """
    discrete = _is_categorical(dist)
    shape = (dist.logits if discrete else dist.mean).shape[1:]
    return sample_from_noise(dist, noise_rows(discrete, keys, shape))
