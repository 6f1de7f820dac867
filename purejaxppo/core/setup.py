"""Setup: what a run is built from before anything is traced (the resolved env,
its spec and the network), and key canonicalisation.

A Config only names its env; it is built here, and the checks that need the built env
(its action space suits the policy the config asks for) run here too. `make_setup`
runs while `train` is traced, so these errors come before anything is compiled."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo.config import Config, env_options
from purejaxppo.envs import EnvSpec, env_spec, resolve_env
from purejaxppo.nn.networks import make_network


class Setup(NamedTuple):
    """Static objects a run is built from (hashable; bound by closures, never traced)."""

    env: Any
    env_params: Any
    spec: EnvSpec
    network: Any


def check_action_space(config: Config, space: Any) -> None:
    """Raise ValueError unless the env's action space suits the config's policy:
    tanh_gaussian squashes into the bounds, so they must be finite. (resolve_env has
    already refused spaces other than Discrete and 1-D Box.)"""
    if config.continuous_dist == "tanh_gaussian" and hasattr(space, "low"):  # Box
        bounds = np.concatenate([np.ravel(space.low), np.ravel(space.high)]).astype(float)
        if not np.all(np.isfinite(bounds)):
            raise ValueError(
                f"Config.continuous_dist='tanh_gaussian': squashing needs finite action "
                f"bounds, and env={config.env!r} has low={space.low!r}, high={space.high!r}"
            )


def resolve_config_env(config: Config) -> tuple[Any, Any]:
    """(env instance, env params) that a config names, built and checked against it."""
    env, env_params = resolve_env(config.env, config.env_params, **env_options(config))
    check_action_space(config, env.action_space(env_params))
    return env, env_params


def make_setup(config: Config) -> Setup:
    """Build the env and the network for a config (static, no tracing); raises the
    env-dependent config errors (unsupported action space, tanh_gaussian bounds)."""
    env, env_params = resolve_config_env(config)
    spec = env_spec(env, env_params)
    return Setup(env, env_params, spec, make_network(config, spec))


def as_key(key: jax.Array) -> jax.Array:
    """Accept new-style typed keys and legacy uint32[2] PRNGKeys alike."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    return jax.random.wrap_key_data(key)
