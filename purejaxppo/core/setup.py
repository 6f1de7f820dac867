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
from purejaxppo.envs.spec import MASK_KEY
from purejaxppo.nn.encoders import check_conv_fits
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


def check_obs_keys(config: Config, spec: EnvSpec) -> None:
    """Raise ValueError unless policy_obs_key / value_obs_key name inputs the env's
    observations have (and only for dict observations)."""
    inputs = [leaf.key for leaf in spec.leaves if leaf.kind != "mask"]
    for name in ("policy_obs_key", "value_obs_key"):
        value = getattr(config, name)
        if value is None:
            continue
        if not spec.dict_obs:
            raise ValueError(
                f"Config.{name}={value!r}: env={config.env!r} observes a single array, "
                "not a dict of named arrays; leave it None"
            )
        for key in (value,) if isinstance(value, str) else value:
            if key not in inputs:
                raise ValueError(
                    f"Config.{name}={value!r}: key {key!r} is not a network input of "
                    f"env={config.env!r}; its observation keys are {inputs}"
                    + (
                        f" ({MASK_KEY!r} is read by the policy head only)"
                        if key == MASK_KEY
                        else ""
                    )
                )


def check_mask(config: Config, spec: EnvSpec) -> None:
    """The legal-action mask (if any) suits the action space."""
    if not spec.has_mask:
        return
    leaf = spec.leaf(MASK_KEY)
    if not spec.discrete:
        raise ValueError(
            f"Config.env={config.env!r}: observation key {MASK_KEY!r} masks actions, but the "
            "action space is continuous (masks need Discrete or MultiDiscrete actions)"
        )
    if leaf.shape != (spec.num_logits,):
        raise ValueError(
            f"Config.env={config.env!r}: observation key {MASK_KEY!r} has shape "
            f"{leaf.env_shape}; it needs one entry per action, ({spec.num_logits},)"
            + (" (the sub-actions' masks concatenated)" if spec.multi_discrete else "")
        )


def make_setup(config: Config) -> Setup:
    """Build the env and the network for a config (static, no tracing); raises the
    env-dependent config errors (unsupported action space, tanh_gaussian bounds,
    observation keys, the action mask's shape, a CNN that does not fit its images)."""
    env, env_params = resolve_config_env(config)
    spec = env_spec(env, env_params, config.image_encoder)
    check_obs_keys(config, spec)
    check_mask(config, spec)
    check_conv_fits(config, spec)
    return Setup(env, env_params, spec, make_network(config, spec))


def as_key(key: jax.Array) -> jax.Array:
    """Accept new-style typed keys and legacy uint32[2] PRNGKeys alike."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    return jax.random.wrap_key_data(key)
