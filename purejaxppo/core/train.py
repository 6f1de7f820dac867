"""`train(config, key)`: a whole PPO run as one pure function.

    out = jax.jit(train)(config, key)                       # one run
    jax.vmap(train, in_axes=(None, 0))(config, keys)        # seeds
    jax.vmap(train)(Config.sweep(config, lr=[...]), keys)   # hyperparameters

`init` and `update` are the same pieces for host loops that run chunks of updates.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from purejaxppo.config import Config
from purejaxppo.core import normalize as norm
from purejaxppo.core.advantages import compute_gae, explained_variance
from purejaxppo.core.learner import EpochsResult, init_opt_state, make_learner, update_epochs
from purejaxppo.core.losses import (
    Batch,
    StepSettings,
    batch_policy,
    behaviour_rows,
    gaussian_base,
    normalize,
)
from purejaxppo.core.observations import init_obs_stats
from purejaxppo.core.rollout import collect_rollout, rollout_carry
from purejaxppo.core.schedules import (
    clip_range,
    next_beta,
    next_lr,
    scheduled_ent_coef,
    scheduled_lr,
)
from purejaxppo.core.setup import as_key, make_setup
from purejaxppo.core.types import EpisodeEnds, EpisodeStats, TrainOutput, TrainState, Transition
from purejaxppo.core.value_targets import init_value_stats, renormalize, value_scale
from purejaxppo.envs import EnvSpec, reset_envs
from purejaxppo.envs.spec import MASK_KEY, empty_masks
from purejaxppo.nn.distributions import Distribution
from purejaxppo.nn.networks import init_params
from purejaxppo.nn.recurrent import initial_carry
from purejaxppo.scale.collectives import global_mean, local_rows, maybe_psum, shard_count

METRIC_NAMES = (
    "episode_return",
    "episode_length",
    "episodes",
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "kl",
    "clip_frac",
    "explained_variance",
    "lr",
    "clip_eps",
    "beta",
    "ent_coef",
    "updates_done",
    "early_stopped",
    "env_steps",
)


def init(config: Config, key: jax.Array, axis_name: str | None = None) -> TrainState:
    """Initial parameters, optimizer state and reset envs.

    Data-parallel (`axis_name`, inside shard_map or a named vmap): every shard holds
    the same parameters and resets its block of num_envs / shards envs, with the
    reset keys split for all envs and sliced (independent of the shard count)."""
    setup = make_setup(config)
    net_key, env_key, run_key = jax.random.split(as_key(key), 3)
    params = init_params(setup.network, config, setup.spec, net_key)
    opt_state = init_opt_state(config, params)
    reset_keys = local_rows(jax.random.split(env_key, config.num_envs), axis_name)
    obs, env_state = reset_envs(setup.env, setup.env_params, reset_keys, setup.spec)
    local_envs = reset_keys.shape[0]
    return TrainState(
        params=params,
        opt_state=opt_state,
        env_state=env_state,
        obs=obs,
        episode=EpisodeStats(
            returns=jnp.zeros(local_envs, jnp.float32),
            lengths=jnp.zeros(local_envs, jnp.int32),
        ),
        key=run_key,
        update_step=jnp.zeros((), jnp.int32),
        obs_stats=init_obs_stats(setup.spec),
        reward_stats=norm.init_stats(()),
        reward_return=jnp.zeros(local_envs, jnp.float32),
        kl_beta=jnp.asarray(config.kl_beta_init, jnp.float32),
        lr=jnp.asarray(config.lr, jnp.float32),
        carry=initial_carry(setup.network, (local_envs,)),
        value_stats=init_value_stats(config),
    )


def _flatten_time(x: Any) -> Any:
    return jax.tree.map(lambda a: a.reshape((-1, *a.shape[2:])), x)


def _episode_metrics(ends: EpisodeEnds, axis_name: str | None = None) -> dict[str, jax.Array]:
    count = maybe_psum(ends.done.sum(), axis_name)
    denom = jnp.maximum(count, 1)

    def mean_at_ends(x):
        total = maybe_psum(jnp.where(ends.done, x, 0).sum().astype(jnp.float32), axis_name)
        return jnp.where(count > 0, total / denom, jnp.nan)

    return {
        "episode_return": mean_at_ends(ends.returns),
        "episode_length": mean_at_ends(ends.lengths),
        "episodes": count.astype(jnp.int32),
    }


def needs_exact_kl(config: Config) -> bool:
    """Whether the update measures the exact KL(old || new): for a KL-penalty objective
    and for the adaptive_kl learning rate (otherwise `kl` is the k3 estimate)."""
    return config.objective != "clip" or config.lr_schedule == "adaptive_kl"


class UpdateKeys(NamedTuple):
    """The keys one update uses, each once."""

    next: jax.Array  # the train state's key for the following update
    rollout: jax.Array
    shuffle: jax.Array  # minibatch order (this shard's own when data-parallel)


def update_keys(key: jax.Array, axis_name: str | None = None) -> UpdateKeys:
    """Split the state's key for one update."""
    next_key, rollout_key, shuffle_key = jax.random.split(key, 3)
    if shard_count(axis_name) > 1:  # each shard its own shuffle; one shard is plain train
        shuffle_key = jax.random.fold_in(shuffle_key, jax.lax.axis_index(axis_name))
    return UpdateKeys(next_key, rollout_key, shuffle_key)


def training_batch(
    config: Config, traj: Transition, axis_name: str | None = None, carry: Any = ()
) -> Batch:
    """GAE over the rollout `traj` ([T, B] leading axes), flattened to [T * B] rows,
    with the advantages normalised over the whole batch when advantage_norm="batch".

    Recurrent (config.recurrent): the rows stay [T, B] sequences, with the episode ends
    and `carry`, the carry each env's sequence started from."""
    terminated = traj.terminated
    if not config.bootstrap_truncation:  # a time-limit end counts as a termination
        terminated = terminated | traj.truncated
    advantages, returns = compute_gae(
        traj.reward,
        traj.value,
        traj.next_value,
        terminated,
        traj.truncated,
        config.gamma,
        config.gae_lambda,
    )
    batch = Batch(
        obs=traj.obs,
        action=traj.action,
        log_prob=traj.log_prob,
        value=traj.value,
        advantages=advantages,
        returns=returns,
    )
    if config.recurrent is None:
        batch = _flatten_time(batch)
    else:
        batch = batch._replace(dones=traj.terminated | traj.truncated, carry=carry)
    if config.advantage_norm == "batch":
        batch = batch._replace(advantages=normalize(batch.advantages, axis_name=axis_name))
    return batch


def with_behaviour_policy(
    config: Config, network: Any, params: Any, batch: Batch
) -> tuple[Batch, Distribution | None]:
    """The behaviour policy per row when the update needs the exact KL (else None), and
    `batch` carrying it when the loss reads it per minibatch (KL-penalty objectives)."""
    if not needs_exact_kl(config):
        return batch, None
    # The behaviour policy is the policy of the parameters the rollout acted with.
    old_dist = behaviour_rows(batch_policy(network, params, batch))
    if config.objective != "clip":
        batch = batch._replace(old_dist=old_dist)
    return batch, old_dist


def step_settings(config: Config, state: TrainState, scale: Any = ()) -> StepSettings:
    """This update's learning rate, clip range, KL-penalty and entropy coefficients,
    and the PopArt `scale` of its value targets (() without PopArt)."""
    return StepSettings(
        lr=scheduled_lr(config, state.update_step, state.lr),
        clip_eps=clip_range(config, state.update_step),
        beta=state.kl_beta,
        ent_coef=scheduled_ent_coef(config, state.update_step),
        value_scale=scale,
    )


def update_kl(
    network: Any,
    old_dist: Distribution | None,
    learned: EpochsResult,
    batch: Batch,
    axis_name: str | None = None,
) -> jax.Array:
    """d in the PPO paper: the mean KL(old || new) of the whole update over `batch`,
    exact when `old_dist` is given, else the mean k3 estimate of the minibatch steps."""
    if old_dist is None:
        return learned.metrics["approx_kl"]
    new = batch_policy(network, learned.params, batch)
    return global_mean(old_dist.kl(gaussian_base(new)), axis_name)


def update_metrics(
    config: Config,
    ends: EpisodeEnds,
    batch: Batch,
    learned: EpochsResult,
    settings: StepSettings,
    kl: jax.Array,
    update_step: jax.Array,
    axis_name: str | None = None,
) -> dict[str, jax.Array]:
    """The scalar metrics of one update (`update_step`: updates done, this one included),
    in METRIC_NAMES order."""
    metrics = {
        **_episode_metrics(ends, axis_name),
        **learned.metrics,
        "kl": kl,
        "explained_variance": explained_variance(batch.value, batch.returns, axis_name),
        "lr": settings.lr,
        "clip_eps": settings.clip_eps,
        "beta": settings.beta,
        "ent_coef": settings.ent_coef,
        "updates_done": learned.steps_done,
        "early_stopped": learned.stopped,
        "env_steps": update_step * config.batch_size,
    }
    return {name: metrics[name] for name in METRIC_NAMES}


def mask_metrics(spec: EnvSpec, obs: Any, axis_name: str | None = None) -> dict[str, jax.Array]:
    """For envs with a legal-action mask: `empty_action_masks`, the env steps of the
    update whose mask left some (sub-)action no legal choice (fit stops on it); {}
    otherwise, so other programs are unchanged."""
    if not spec.has_mask:
        return {}
    count = jnp.sum(empty_masks(spec, obs[MASK_KEY]).astype(jnp.int32))
    return {"empty_action_masks": maybe_psum(count, axis_name)}


def update(
    config: Config, state: TrainState, axis_name: str | None = None
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One PPO iteration: rollout, GAE, update epochs, schedules. Metrics are scalars.

    Data-parallel (`axis_name`): each shard collects, computes GAE and shuffles its own
    envs' data; gradients, advantage/normaliser statistics and metrics are global, so
    the parameters stay identical on every shard."""
    setup = make_setup(config)
    keys = update_keys(state.key, axis_name)
    carry, traj, ends = collect_rollout(
        setup,
        config,
        state.params,
        rollout_carry(state),
        keys.rollout,
        axis_name,
        value_scale(state.value_stats),
    )
    batch = training_batch(config, traj, axis_name, state.carry)
    batch, old_dist = with_behaviour_policy(config, setup.network, state.params, batch)
    params, value_stats, scale = renormalize(
        config, state.params, state.value_stats, batch.returns, axis_name
    )
    settings = step_settings(config, state, scale)
    learner = make_learner(setup.network, config, params, axis_name)
    learned = update_epochs(learner, settings, batch, params, state.opt_state, keys.shuffle)
    kl = update_kl(setup.network, old_dist, learned, batch, axis_name)
    new_state = TrainState(
        params=learned.params,
        opt_state=learned.opt_state,
        env_state=carry.env_state,
        obs=carry.obs,
        episode=carry.episode,
        key=keys.next,
        update_step=state.update_step + 1,
        obs_stats=carry.obs_stats,
        reward_stats=carry.reward_stats,
        reward_return=carry.reward_return,
        kl_beta=next_beta(config, state.kl_beta, kl),
        lr=next_lr(config, settings.lr, kl),
        carry=carry.carry,
        value_stats=value_stats,
        pbt=state.pbt,
    )
    metrics = update_metrics(
        config, ends, batch, learned, settings, kl, new_state.update_step, axis_name
    )
    return new_state, {**metrics, **mask_metrics(setup.spec, batch.obs, axis_name)}


def run_updates(
    config: Config, state: TrainState, num_updates: int, axis_name: str | None = None
) -> tuple[TrainState, dict[str, jax.Array]]:
    """`num_updates` iterations as one scan; metrics have leading axis num_updates."""
    return jax.lax.scan(lambda s, _: update(config, s, axis_name), state, None, length=num_updates)


def train(config: Config, key: jax.Array, axis_name: str | None = None) -> TrainOutput:
    """A whole PPO run. Returns the final state and metrics of shape [num_updates].

    key: a typed key (`jax.random.key`) or a legacy `jax.random.PRNGKey`.
    axis_name: data-parallel axis when called inside shard_map (see
    `purejaxppo.train_sharded`); None for one device.
    """
    state, metrics = run_updates(
        config, init(config, key, axis_name), config.num_updates, axis_name
    )
    return TrainOutput(state, metrics)
