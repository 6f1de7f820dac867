"""Rollout collection: a `lax.scan` of `env_step` over num_steps.

Observation statistics are frozen for the whole rollout (every observation of one batch
is normalised the same way) and updated once, at the end of `collect_rollout`, with the
raw observations it visited; the updated statistics apply from the next rollout.
Reward statistics follow the discounted return step by step, as in SB3's VecNormalize.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from purejaxppo.config import Config
from purejaxppo.core import normalize as norm
from purejaxppo.core.observations import ObsStats, observe, stats_inputs, update_obs_stats
from purejaxppo.core.setup import Setup
from purejaxppo.core.types import EpisodeEnds, EpisodeStats, TrainState, Transition
from purejaxppo.core.value_targets import critic_value
from purejaxppo.envs import split_step_keys, step_envs
from purejaxppo.nn.distributions import env_action, noise_rows, sample_from_noise
from purejaxppo.nn.recurrent import reset_carry
from purejaxppo.scale.collectives import local_rows, shard_count


class RolloutCarry(NamedTuple):
    env_state: Any
    obs: Any  # [B, obs_dim] raw observation (or a dict of [B, *leaf shape])
    episode: EpisodeStats
    obs_stats: ObsStats  # frozen during the scan, updated after it
    reward_stats: norm.RunningStats
    reward_return: jax.Array  # [B]
    carry: Any = ()  # recurrent hidden state per env (reset where an episode ended)


class StepRecord(NamedTuple):
    obs: Any  # policy input
    raw_obs: Any  # raw normalised leaves when normalize_obs (for the statistics), else None
    action: jax.Array
    log_prob: jax.Array
    reward: jax.Array  # learner reward
    terminated: jax.Array
    truncated: jax.Array
    final_obs: Any  # raw
    ends: EpisodeEnds
    value: Any = None  # recurrent: V(obs) from the step's carry, else None (computed after)
    hidden: Any = None  # recurrent: the carry reached at this step, before any reset


def rollout_carry(state: TrainState) -> RolloutCarry:
    """The part of a TrainState a rollout reads and advances."""
    return RolloutCarry(
        state.env_state,
        state.obs,
        state.episode,
        state.obs_stats,
        state.reward_stats,
        state.reward_return,
        state.carry,
    )


def scale_rewards(
    config: Config,
    stats: norm.RunningStats,
    discounted_return: jax.Array,
    reward: jax.Array,
    done: jax.Array,
    axis_name: str | None = None,
) -> tuple[norm.RunningStats, jax.Array, jax.Array]:
    """Learner rewards for one step of B envs, and the advanced reward-scaling state.

    With normalize_reward: R <- gamma * R + r per env, the statistics absorb the B new
    values of R, the reward is divided by their std (and clipped), and R restarts at 0
    where an episode ended. Then every reward is multiplied by reward_scale.
    """
    if config.normalize_reward:
        discounted_return = discounted_return * config.gamma + reward
        stats = norm.update(stats, discounted_return, axis_name)
        reward = norm.scale(stats, reward, config.reward_clip)
        discounted_return = jnp.where(done, 0.0, discounted_return)
    return stats, discounted_return, reward * config.reward_scale


def env_step(
    setup: Setup,
    config: Config,
    params: Any,
    carry: RolloutCarry,
    xs: tuple[jax.Array, jax.Array],
    axis_name: str | None = None,
) -> tuple[RolloutCarry, StepRecord]:
    """Act in every env and step it. xs: (action noise [B, A] from `noise_rows`,
    env keys [B, 2] from `split_step_keys`)."""
    action_noise, env_keys = xs
    policy_obs = observe(config, carry.obs_stats, carry.obs)
    if config.recurrent is None:
        dist, value, hidden = setup.network.apply(params, policy_obs, method="policy"), None, ()
    else:
        hidden, dist, value = setup.network.apply(params, carry.carry, policy_obs, method="step")
    action = sample_from_noise(dist, action_noise)
    log_prob = dist.log_prob(action)
    step = step_envs(
        setup.env,
        setup.env_params,
        setup.spec,
        env_keys,
        carry.env_state,
        env_action(dist, action),
    )

    done = jnp.logical_or(step.terminated, step.truncated)
    returns = carry.episode.returns + step.reward
    lengths = carry.episode.lengths + 1
    episode = EpisodeStats(
        returns=jnp.where(done, 0.0, returns), lengths=jnp.where(done, 0, lengths)
    )
    reward_stats, reward_return, reward = scale_rewards(
        config, carry.reward_stats, carry.reward_return, step.reward, done, axis_name
    )
    record = StepRecord(
        obs=policy_obs,
        raw_obs=stats_inputs(carry.obs_stats, carry.obs) if config.normalize_obs else None,
        action=action,
        log_prob=log_prob,
        reward=reward,
        terminated=step.terminated,
        truncated=step.truncated,
        final_obs=step.final_obs,
        ends=EpisodeEnds(done=done, returns=returns, lengths=lengths),
        value=value,
        hidden=None if config.recurrent is None else hidden,
    )
    new_carry = RolloutCarry(
        step.env_state,
        step.obs,
        episode,
        carry.obs_stats,
        reward_stats,
        reward_return,
        reset_carry(hidden, done),  # the next step of a finished episode starts afresh
    )
    return new_carry, record


def step_records(
    setup: Setup,
    config: Config,
    params: Any,
    carry: RolloutCarry,
    key: jax.Array,
    axis_name: str | None = None,
) -> tuple[RolloutCarry, StepRecord]:
    """The scan of `collect_rollout`: config.num_steps env steps from `carry`, with
    what each step saw and did ([T, B] records, the pre-reset final observations and,
    for recurrent networks, the carry reached at each step before its reset)."""
    num_envs = carry.episode.returns.shape[0] * shard_count(axis_name)
    keys = local_rows(jax.random.split(key, (config.num_steps, 2, num_envs)), axis_name, axis=2)
    # All action noise of the rollout in one vectorised draw before the scan: the
    # same numbers as per-step draws from the same per-env keys, without a small
    # RNG call inside every step.
    spec = setup.spec
    noise = jax.vmap(lambda k: noise_rows(spec.discrete, k, spec.logits_shape))(keys[:, 0])
    env_keys = split_step_keys(keys[:, 1])  # [T, B, 2], hoisted out of the scan too
    return jax.lax.scan(
        lambda c, x: env_step(setup, config, params, c, x, axis_name), carry, (noise, env_keys)
    )


def collect_rollout(
    setup: Setup,
    config: Config,
    params: Any,
    carry: RolloutCarry,
    key: jax.Array,
    axis_name: str | None = None,
    value_scale: Any = (),
) -> tuple[RolloutCarry, Transition, EpisodeEnds]:
    """Run config.num_steps env steps; return the new carry, a Transition [T, B] and the
    episode ends seen on the way.

    Values are computed after the scan in one batched critic call over the visited
    observations and the true next observations (pre-reset where an episode ended):
    one large matmul is cheaper than a critic call inside every scan step, and it is
    the same function of the same parameters. A recurrent network's values need its
    carry, so they come from the scan's steps; the bootstraps (V of the true next
    observation from the carry reached at the step, before any reset) are still one
    batched call after it.

    Data-parallel (`axis_name`): this shard steps its block of the envs; the per-env
    keys are split for all envs and sliced, so they do not depend on the shard count,
    and the normaliser statistics merge over every shard.

    value_scale: PopArt's ValueScale of the critic's outputs (() without PopArt).
    """
    num_steps = config.num_steps
    obs_stats = carry.obs_stats
    carry, rec = step_records(setup, config, params, carry, key, axis_name)
    final_obs = observe(config, obs_stats, rec.final_obs)
    if config.recurrent is None:
        both = jax.tree.map(lambda a, b: jnp.concatenate([a, b], axis=0), rec.obs, final_obs)
        values = setup.network.apply(params, both, method="value")
    else:
        # V(true next obs) from the carry reached at that step, before the reset that
        # follows an episode end: at a truncation, the final observation's value as the
        # episode would have continued (one batched critic step over all [T, B]).
        bootstrap = setup.network.apply(params, rec.hidden, final_obs, method="value_step")
        values = jnp.concatenate([rec.value, bootstrap], axis=0)
    # The critic's head outputs as values (symlog, a categorical critic, PopArt's scale).
    values = critic_value(config, values, value_scale)
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
    if config.normalize_obs:
        # The one point where observation statistics change.
        carry = carry._replace(obs_stats=update_obs_stats(obs_stats, rec.raw_obs, axis_name))
    return carry, transition, rec.ends
