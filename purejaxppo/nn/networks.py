"""Actor-critic MLPs: separate actor and critic (default) or one shared torso.

Orthogonal init (`purejaxppo.nn.initializers.orthogonal`, re-exported here; gain
sqrt(2) on hidden layers, 0.01 on the policy head, 1.0 on the value head) with zero
biases, as in the PPO implementation-details
literature. Continuous policies use a state-independent log-std parameter.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from purejaxppo.config import Config
from purejaxppo.envs import EnvSpec
from purejaxppo.nn.distributions import Categorical, DiagGaussian, Distribution, TanhGaussian
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


class ActorCritic(nn.Module):
    """obs [..., obs_dim] -> (policy distribution, value [...])."""

    action_dim: int
    discrete: bool
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    shared_torso: bool = False
    critic_hidden_sizes: tuple[int, ...] | None = None  # None: same as hidden_sizes
    continuous_dist: str = "gaussian"  # or "tanh_gaussian"
    action_low: tuple[float, ...] | None = None  # bounds, used by tanh_gaussian
    action_high: tuple[float, ...] | None = None

    def setup(self):
        if self.shared_torso:
            self.torso = MLP(self.hidden_sizes, self.activation)
        else:
            self.actor_torso = MLP(self.hidden_sizes, self.activation)
            widths = self.critic_hidden_sizes
            if widths is None:
                widths = self.hidden_sizes
            self.critic_torso = MLP(widths, self.activation)
        self.policy_head = nn.Dense(
            self.action_dim,
            kernel_init=orthogonal(0.01),
            bias_init=nn.initializers.zeros,
        )
        self.value_head = nn.Dense(1, kernel_init=orthogonal(1.0), bias_init=nn.initializers.zeros)
        if not self.discrete:
            self.log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))

    def _dist(self, features: jax.Array) -> Distribution:
        out = self.policy_head(features)
        if self.discrete:
            return Categorical(out)
        if self.continuous_dist == "tanh_gaussian":
            low = jnp.asarray(self.action_low, jnp.float32)
            high = jnp.asarray(self.action_high, jnp.float32)
            return TanhGaussian(out, self.log_std, low, high)
        return DiagGaussian(out, self.log_std)

    def _value(self, features: jax.Array) -> jax.Array:
        return self.value_head(features)[..., 0]

    def __call__(self, obs: jax.Array) -> tuple[Distribution, jax.Array]:
        if self.shared_torso:
            h = self.torso(obs)
            return self._dist(h), self._value(h)
        return self._dist(self.actor_torso(obs)), self._value(self.critic_torso(obs))

    def policy(self, obs: jax.Array) -> Distribution:
        """The policy alone (skips the critic when the torsos are separate)."""
        torso = self.torso if self.shared_torso else self.actor_torso
        return self._dist(torso(obs))

    def value(self, obs: jax.Array) -> jax.Array:
        """The value alone (skips the actor when the torsos are separate)."""
        torso = self.torso if self.shared_torso else self.critic_torso
        return self._value(torso(obs))


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
    )


def init_params(network: ActorCritic, config: Config, spec: EnvSpec, key: jax.Array):
    """Initial parameters; the Gaussian log-std starts at config.log_std_init."""
    params = network.init(key, jnp.zeros((1, spec.obs_dim), jnp.float32))
    if not spec.discrete:
        inner = dict(params["params"])
        inner["log_std"] = jnp.full((spec.action_dim,), config.log_std_init, jnp.float32)
        params = {**params, "params": inner}
    return params
