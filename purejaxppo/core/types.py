"""State and data containers. Arrays only (no functions, no optimizers), so every
one of them can be jitted, vmapped, sharded and checkpointed."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

from purejaxppo.core.normalize import RunningStats


class EpisodeStats(NamedTuple):
    """Running return and length of the episode in progress, per env."""

    returns: jax.Array  # [B] float32
    lengths: jax.Array  # [B] int32


class TrainState(NamedTuple):
    """Everything a PPO run carries from one update to the next."""

    params: Any  # network parameters (flax variable dict)
    opt_state: Any  # optax state (gradient clipping + Adam moments and count)
    env_state: Any  # batched env state, leading axis B
    obs: Any  # [B, obs_dim] current observation of each env (dict obs: [B, *leaf shape])
    episode: EpisodeStats
    key: jax.Array  # typed PRNG key for the next update
    update_step: jax.Array  # int32 scalar: updates completed so far
    obs_stats: Any  # running mean/var of raw vector observations (normalize_obs; per key)
    reward_stats: RunningStats  # running var of the discounted return, scalar (normalize_reward)
    reward_return: jax.Array  # [B] discounted return of the episode in progress (normalize_reward)
    kl_beta: jax.Array  # float32 scalar: KL-penalty coefficient for the next update
    lr: jax.Array  # float32 scalar: learning rate for the next update (adaptive_kl schedule)
    carry: Any = ()  # recurrent: hidden state per env, leading axis B (see nn.recurrent); ()
    value_stats: Any = ()  # popart: the returns' moving averages (core.value_targets); ()
    pbt: Any = ()  # population member: its hyperparameters and PBT state (core.population); ()


class Transition(NamedTuple):
    """One rollout, time-major: every field has leading shape [T, B]."""

    obs: Any  # [T, B, obs_dim] (or per key) as the policy saw it (normalised when asked)
    action: jax.Array  # [T, B] int32, [T, B, K] (MultiDiscrete) or [T, B, action_dim] float32
    log_prob: jax.Array  # [T, B] log pi_old(action | obs)
    value: jax.Array  # [T, B] V(obs)
    reward: jax.Array  # [T, B] as the learner sees it (scaled when normalize_reward)
    terminated: jax.Array  # [T, B] bool
    truncated: jax.Array  # [T, B] bool
    next_value: jax.Array  # [T, B] V(true next obs): the pre-reset obs where an episode ended


class EpisodeEnds(NamedTuple):
    """Per step of a rollout: which envs finished an episode, with its return/length."""

    done: jax.Array  # [T, B] bool
    returns: jax.Array  # [T, B] float32 (meaningful where done)
    lengths: jax.Array  # [T, B] int32 (meaningful where done)


class TrainOutput(NamedTuple):
    """What `train` returns: the final state and per-update metrics ([num_updates] each)."""

    state: TrainState
    metrics: dict[str, jax.Array]
