"""Rollout collection: a `lax.scan` of `env_step` over num_steps."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from purejaxppo.distributions import noise_rows, sample_from_noise
from purejaxppo.envs import EnvSpec, split_step_keys, step_envs
from purejaxppo.types import EpisodeEnds, EpisodeStats, Transition


class Setup(NamedTuple):
    """Static objects a run is built from (hashable; bound by closures, never traced)."""

    env: Any
    env_params: Any
    spec: EnvSpec
    network: Any


class RolloutCarry(NamedTuple):
    env_state: Any
    obs: jax.Array  # [B, obs_dim]
    episode: EpisodeStats


class StepRecord(NamedTuple):
    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    final_obs: jax.Array
    ends: EpisodeEnds


def env_step(
    setup: Setup, params: Any, carry: RolloutCarry, xs: tuple[jax.Array, jax.Array]
) -> tuple[RolloutCarry, StepRecord]:
    """Act in every env and step it. xs: (action noise [B, A] from `noise_rows`,
    env keys [B, 2] from `split_step_keys`)."""
    action_noise, env_keys = xs
    dist = setup.network.apply(params, carry.obs, method="policy")
    action = sample_from_noise(dist, action_noise)
    log_prob = dist.log_prob(action)
    step = step_envs(setup.env, setup.env_params, setup.spec, env_keys, carry.env_state, action)

    done = jnp.logical_or(step.terminated, step.truncated)
    returns = carry.episode.returns + step.reward
    lengths = carry.episode.lengths + 1
    episode = EpisodeStats(
        returns=jnp.where(done, 0.0, returns), lengths=jnp.where(done, 0, lengths)
    )
    record = StepRecord(
        obs=carry.obs,
        action=action,
        log_prob=log_prob,
        reward=step.reward,
        terminated=step.terminated,
        truncated=step.truncated,
        final_obs=step.final_obs,
        ends=EpisodeEnds(done=done, returns=returns, lengths=lengths),
    )
    return RolloutCarry(step.env_state, step.obs, episode), record


def collect_rollout(
    setup: Setup,
    params: Any,
    carry: RolloutCarry,
    key: jax.Array,
    num_steps: int,
) -> tuple[RolloutCarry, Transition, EpisodeEnds]:
    """Run num_steps env steps; return the new carry, a Transition [T, B] and the
    episode ends seen on the way.

    Values are computed after the scan in one batched critic call over the visited
    observations and the true next observations (pre-reset where an episode ended):
    one large matmul is cheaper than a critic call inside every scan step, and it is
    the same function of the same parameters.
    """
    num_envs = carry.obs.shape[0]
    keys = jax.random.split(key, (num_steps, 2, num_envs))
    # All action noise of the rollout in one vectorised draw before the scan: the
    # same numbers as per-step draws from the same per-env keys, without a small
    # RNG call inside every step.
    spec = setup.spec
    noise = jax.vmap(lambda k: noise_rows(spec.discrete, k, spec.action_dim))(keys[:, 0])
    env_keys = split_step_keys(keys[:, 1])  # [T, B, 2], hoisted out of the scan too
    carry, rec = jax.lax.scan(lambda c, x: env_step(setup, params, c, x), carry, (noise, env_keys))
    both = jnp.concatenate([rec.obs, rec.final_obs], axis=0)  # [2T, B, obs_dim]
    values = setup.network.apply(params, both, method="value")
    transition = Transition(
        obs=rec.obs,
        action=rec.action,
        log_prob=rec.log_prob,
        value=values[:num_steps],
        reward=rec.reward,
        terminated=rec.terminated,
        truncated=rec.truncated,
        next_value=values[num_steps:],
    )
    return carry, transition, rec.ends
