"""Setup: what a run is built from before anything is traced (the resolved env,
its spec and the network), and key canonicalisation."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from purejaxppo.config import Config, env_options
from purejaxppo.envs import EnvSpec, env_spec, resolve_env
from purejaxppo.nn.networks import make_network


class Setup(NamedTuple):
    """Static objects a run is built from (hashable; bound by closures, never traced)."""

    env: Any
    env_params: Any
    spec: EnvSpec
    network: Any


def make_setup(config: Config) -> Setup:
    """Resolve the env and build the network for a config (static, no tracing)."""
    env, env_params = resolve_env(config.env, config.env_params, **env_options(config))
    spec = env_spec(env, env_params)
    return Setup(env, env_params, spec, make_network(config, spec))


def as_key(key: jax.Array) -> jax.Array:
    """Accept new-style typed keys and legacy uint32[2] PRNGKeys alike."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    return jax.random.wrap_key_data(key)
