"""Actor-critic networks: an observation encoder (`nn.encoders`: CNNs for images,
vectors passed through) then MLP torsos, separate for actor and critic (default, each
with its own encoder and input keys) or one shared torso.

Orthogonal init (`purejaxppo.nn.initializers.orthogonal`, re-exported here; gain
sqrt(2) on hidden layers, 0.01 on the policy head, 1.0 on the value head) with zero
biases, as in the PPO implementation-details
literature. Continuous policies use a state-independent log-std parameter.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from purejaxppo.config import MIN_STD, Config
from purejaxppo.envs.spec import MASK_KEY, EnvSpec, ObsLeaf, input_keys
from purejaxppo.nn.cells import make_cell
from purejaxppo.nn.distributions import (
    Categorical,
    DiagGaussian,
    Distribution,
    MultiCategorical,
    TanhGaussian,
    mask_logits,
)
from purejaxppo.nn.encoders import ObsEncoder, make_encoder
from purejaxppo.nn.initializers import orthogonal

__all__ = ["MLP", "ActorCritic", "init_params", "make_network", "orthogonal"]


_ACTIVATIONS = {
    "tanh": jnp.tanh,
    "relu": nn.relu,
    "gelu": nn.gelu,
    "silu": nn.silu,
    "elu": nn.elu,
    "leaky_relu": nn.leaky_relu,
}


class MLP(nn.Module):
    """Dense layers with orthogonal(sqrt 2) init and the chosen activation."""

    hidden_sizes: tuple[int, ...]
    activation: str

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = _ACTIVATIONS[self.activation]
        for width in self.hidden_sizes:
            x = nn.Dense(
                width,
                kernel_init=orthogonal(math.sqrt(2.0)),
                bias_init=nn.initializers.zeros,
            )(x)
            x = act(x)
        return x


def at_precision(method: Callable) -> Callable:
    """Run an ActorCritic method with every matmul and convolution traced inside it at
    the module's `matmul_precision` (jax.default_matmul_precision)."""

    @functools.wraps(method)
    def wrapped(self, *args, **kwargs):
        with jax.default_matmul_precision(self.matmul_precision):
            return method(self, *args, **kwargs)

    return wrapped


class ActorCritic(nn.Module):
    """obs (one array [..., obs_dim] or a dict of [..., *leaf shape]) -> (policy
    distribution, value [...]).

    Discrete policies read the legal-action mask obs["action_mask"] when the env has
    one; MultiDiscrete ones output [K, max n] logits with each sub-action's padding
    masked."""

    action_dim: int
    discrete: bool
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    shared_torso: bool = False
    critic_hidden_sizes: tuple[int, ...] | None = None  # None: same as hidden_sizes
    continuous_dist: str = "gaussian"  # or "tanh_gaussian"
    action_low: tuple[float, ...] | None = None  # bounds, used by tanh_gaussian
    action_high: tuple[float, ...] | None = None
    actor_encoder: ObsEncoder | None = None  # None: the observation is the features
    critic_encoder: ObsEncoder | None = None  # ignored with shared_torso
    action_nvec: tuple[int, ...] | None = None  # MultiDiscrete sub-action sizes
    has_mask: bool = False  # obs["action_mask"] holds the legal actions
    recurrent: str | None = None  # None, "gru" or "lstm": a cell after each torso
    recurrent_size: int = 128
    matmul_precision: str = "float32"  # see Config.matmul_precision
    value_outputs: int = 1  # 1: a scalar critic head; n: n logits (categorical critic)
    state_dependent_std: bool = False  # the Gaussian's std from a head on the features

    def setup(self):
        if self.shared_torso:
            self.torso = MLP(self.hidden_sizes, self.activation)
        else:
            self.actor_torso = MLP(self.hidden_sizes, self.activation)
            widths = self.critic_hidden_sizes
            if widths is None:
                widths = self.hidden_sizes
            self.critic_torso = MLP(widths, self.activation)
        if self.recurrent is not None:
            self.actor_cell = make_cell(self.recurrent, self.recurrent_size)
            if not self.shared_torso:
                self.critic_cell = make_cell(self.recurrent, self.recurrent_size)
        self.policy_head = nn.Dense(
            self.action_dim
            if self.action_nvec is None
            else len(self.action_nvec) * max(self.action_nvec),
            kernel_init=orthogonal(0.01),
            bias_init=nn.initializers.zeros,
        )
        # A categorical critic starts near uniform over its bins, like the policy head.
        value_gain = 1.0 if self.value_outputs == 1 else 0.01
        self.value_head = nn.Dense(
            self.value_outputs, kernel_init=orthogonal(value_gain), bias_init=nn.initializers.zeros
        )
        if not self.discrete and self.state_dependent_std:
            self.std_head = nn.Dense(
                self.action_dim, kernel_init=orthogonal(0.01), bias_init=nn.initializers.zeros
            )
        elif not self.discrete:
            self.log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))

    def _features(self, encoder: ObsEncoder | None, obs) -> jax.Array:
        return obs if encoder is None else encoder(obs)

    def _legal(self, obs, batch: tuple[int, ...]) -> jax.Array | None:
        """The legal-action mask shaped like the logits, or None when all are legal."""
        if self.action_nvec is None:
            return obs[MASK_KEY] if self.has_mask else None
        nvec, width = self.action_nvec, max(self.action_nvec)
        padding = jnp.arange(width)[None, :] < jnp.asarray(nvec)[:, None]  # [K, N]
        if not self.has_mask:
            return jnp.broadcast_to(padding, (*batch, *padding.shape))
        flat = obs[MASK_KEY]  # [..., sum(nvec)]: the sub-actions' masks concatenated
        starts = [sum(nvec[:i]) for i in range(len(nvec))]
        rows = zip(starts, nvec, strict=True)
        index = jnp.asarray([[min(s + j, s + n - 1) for j in range(width)] for s, n in rows])
        return jnp.take(flat, index, axis=-1) & padding

    def _dist(self, features: jax.Array, obs=None) -> Distribution:
        out = self.policy_head(features)
        if self.discrete:
            batch = out.shape[:-1]
            if self.action_nvec is not None:
                out = out.reshape((*batch, len(self.action_nvec), max(self.action_nvec)))
            legal = self._legal(obs, batch)
            if legal is not None:
                out = mask_logits(out, legal)
            return Categorical(out) if self.action_nvec is None else MultiCategorical(out)
        if self.state_dependent_std:  # Brax's and gymnax-blines' parametrisation
            log_std = jnp.log(jax.nn.softplus(self.std_head(features)) + MIN_STD)
        else:
            log_std = self.log_std
        if self.continuous_dist == "tanh_gaussian":
            low = jnp.asarray(self.action_low, jnp.float32)
            high = jnp.asarray(self.action_high, jnp.float32)
            return TanhGaussian(out, log_std, low, high)
        return DiagGaussian(out, log_std)

    def _value(self, features: jax.Array) -> jax.Array:
        """The critic's head output: [...] for a scalar head, [..., value_outputs]
        logits for a categorical one (core.value_targets.critic_value reads both)."""
        out = self.value_head(features)
        return out[..., 0] if self.value_outputs == 1 else out

    @at_precision
    def __call__(self, obs) -> tuple[Distribution, jax.Array]:
        self._feed_forward_only("__call__")
        if self.shared_torso:
            h = self.torso(self._features(self.actor_encoder, obs))
            return self._dist(h, obs), self._value(h)
        return self.policy(obs), self.value(obs)

    @at_precision
    def policy(self, obs) -> Distribution:
        """The policy alone (skips the critic when the torsos are separate); reads only
        the policy's keys (and the action mask)."""
        self._feed_forward_only("policy")
        torso = self.torso if self.shared_torso else self.actor_torso
        return self._dist(torso(self._features(self.actor_encoder, obs)), obs)

    @at_precision
    def value(self, obs) -> jax.Array:
        """The value alone (skips the actor when the torsos are separate)."""
        self._feed_forward_only("value")
        if self.shared_torso:
            return self._value(self.torso(self._features(self.actor_encoder, obs)))
        return self._value(self.critic_torso(self._features(self.critic_encoder, obs)))

    def _feed_forward_only(self, method: str) -> None:
        if self.recurrent is not None:
            raise TypeError(
                f"ActorCritic.{method}: a recurrent network needs its carry; use "
                "method='step' or 'policy_step' (one step), or nn.recurrent.unroll"
            )

    # ---- recurrent pieces (recurrent is not None) ---------------------------------
    # The carry of a run is a tuple with one cell state per cell: (actor, critic) with
    # separate torsos, (shared,) with shared_torso. `nn.recurrent` composes these.

    def _cells(self) -> tuple[nn.Module, ...]:
        return (self.actor_cell,) if self.shared_torso else (self.actor_cell, self.critic_cell)

    @at_precision
    def features(self, obs) -> tuple[jax.Array, ...]:
        """Each cell's projected input (its torso's output through the cell's input
        kernels), one per cell: (actor, critic) or (shared,); any leading axes. The
        update computes these for a whole sequence before stepping through time."""
        if self.shared_torso:
            torsos = (self.torso(self._features(self.actor_encoder, obs)),)
        else:
            torsos = (
                self.actor_torso(self._features(self.actor_encoder, obs)),
                self.critic_torso(self._features(self.critic_encoder, obs)),
            )
        return tuple(cell.project(x) for cell, x in zip(self._cells(), torsos, strict=True))

    @at_precision
    def cells(self, carry: tuple, features: tuple) -> tuple[tuple, tuple]:
        """One step of each cell from its projected input: (new carry, outputs), both
        tuples like `features`."""
        stepped = [cell(c, x) for cell, c, x in zip(self._cells(), carry, features, strict=True)]
        return tuple(c for c, _ in stepped), tuple(y for _, y in stepped)

    @at_precision
    def heads(self, outputs: tuple, obs) -> tuple[Distribution, jax.Array]:
        """(policy, value) from the cells' outputs (the mask is read from `obs`)."""
        return self._dist(outputs[0], obs), self._value(outputs[-1])

    @at_precision
    def step(self, carry: tuple, obs) -> tuple[tuple, Distribution, jax.Array]:
        """One env step of every row: (carry after it, policy, value)."""
        carry, outputs = self.cells(carry, self.features(obs))
        dist, value = self.heads(outputs, obs)
        return carry, dist, value

    @at_precision
    def policy_step(self, cell_carry: Any, obs) -> tuple[Any, Distribution]:
        """The policy alone, for acting: the actor's (or the shared) cell state only."""
        torso = self.torso if self.shared_torso else self.actor_torso
        features = torso(self._features(self.actor_encoder, obs))
        cell_carry, y = self.actor_cell(cell_carry, self.actor_cell.project(features))
        return cell_carry, self._dist(y, obs)

    @at_precision
    def value_step(self, carry: tuple, obs) -> jax.Array:
        """The value of `obs` reached from `carry` (the critic's cell only): the
        bootstrap value of a truncated episode's final observation."""
        if self.shared_torso:
            features = self.torso(self._features(self.actor_encoder, obs))
            return self._value(self.actor_cell(carry[0], self.actor_cell.project(features))[1])
        features = self.critic_torso(self._features(self.critic_encoder, obs))
        return self._value(self.critic_cell(carry[-1], self.critic_cell.project(features))[1])


def _encoder(config: Config, spec: EnvSpec, selection) -> ObsEncoder | None:
    """The encoder of one torso; None when the observation is one vector (the torso
    reads it as it is, as it always has)."""
    if not spec.dict_obs and spec.leaves[0].kind == "vector":
        return None
    return make_encoder(config, spec, input_keys(spec, selection))


def make_network(config: Config, spec: EnvSpec) -> ActorCritic:
    return ActorCritic(
        action_dim=spec.action_dim,
        discrete=spec.discrete,
        hidden_sizes=config.hidden_sizes,
        activation=config.activation,
        shared_torso=config.shared_torso,
        critic_hidden_sizes=config.critic_hidden_sizes,
        continuous_dist=config.continuous_dist,
        action_low=None if spec.discrete else tuple(float(x) for x in spec.action_low),
        action_high=None if spec.discrete else tuple(float(x) for x in spec.action_high),
        actor_encoder=_encoder(config, spec, config.policy_obs_key),
        critic_encoder=_encoder(config, spec, config.value_obs_key),
        action_nvec=spec.action_nvec,
        has_mask=spec.has_mask,
        recurrent=config.recurrent,
        recurrent_size=config.recurrent_size,
        matmul_precision=config.matmul_precision,
        value_outputs=config.value_bins if config.value_target == "hl_gauss" else 1,
        state_dependent_std=config.state_dependent_std,
    )


def example_obs(spec: EnvSpec, batch: tuple[int, ...] = (1,)):
    """Zeros shaped like a batch of stored observations (the mask all legal)."""

    def zeros(leaf: ObsLeaf):
        if leaf.kind == "mask":
            return jnp.ones((*batch, *leaf.shape), bool)
        return jnp.zeros((*batch, *leaf.shape), leaf.dtype)

    if not spec.dict_obs:
        return zeros(spec.leaves[0])
    return {leaf.key: zeros(leaf) for leaf in spec.leaves}


def init_params(network: ActorCritic, config: Config, spec: EnvSpec, key: jax.Array):
    """Initial parameters; the Gaussian log-std starts at config.log_std_init (with
    state_dependent_std: the std head's bias gives that std, near every state)."""
    if network.recurrent is None:
        params = network.init(key, example_obs(spec))
    else:
        from purejaxppo.nn.recurrent import initial_carry

        params = network.init(key, initial_carry(network, (1,)), example_obs(spec), method="step")
    if not spec.discrete:
        inner = dict(params["params"])
        log_std = jnp.full((spec.action_dim,), config.log_std_init, jnp.float32)
        if config.state_dependent_std:
            # softplus(bias) + MIN_STD = exp(log_std_init): the inverse softplus.
            std = jnp.maximum(jnp.exp(log_std) - MIN_STD, 1e-6)
            inner["std_head"] = {**inner["std_head"], "bias": jnp.log(jnp.expm1(std))}
        else:
            inner["log_std"] = log_std
        params = {**params, "params": inner}
    return params
