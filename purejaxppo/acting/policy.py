"""Acting with a trained policy: `make_policy` and `evaluate`.

Both read the observation statistics from the train state and normalise exactly as
the rollout does (`rollout.observe`), so a policy acts on raw env observations. The
acting function itself is built from the config and the env's spec alone
(`policy_from_spec`), which is how an exported policy acts without its env.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from purejaxppo.config import Config
from purejaxppo.core.observations import ObsStats, observe
from purejaxppo.core.setup import as_key, make_setup
from purejaxppo.core.types import TrainState
from purejaxppo.envs import EnvSpec, reset_envs, split_step_keys, step_envs
from purejaxppo.envs.spec import MASK_KEY, input_keys
from purejaxppo.nn.distributions import env_action, sample_rows
from purejaxppo.nn.networks import make_network
from purejaxppo.nn.recurrent import cell_carry, reset_carry


class EvalResult(NamedTuple):
    """Per-episode results of `evaluate`."""

    returns: jax.Array  # [num_episodes] float32: undiscounted env reward (unscaled)
    lengths: jax.Array  # [num_episodes] int32


def require_single_config(config: Config, what: str) -> None:
    if config.batch_shape != ():
        raise ValueError(
            f"{what}: config is a batch of {config.batch_shape[0]} configs; pass one "
            "(config.unstack()[i]) with the matching state"
        )


def policy_rows(config: Config, spec: EnvSpec, deterministic: bool) -> Callable[..., Any]:
    """act_rows(params, obs_stats, obs [N, obs_dim] (or a dict of [N, *leaf shape]),
    keys [N]) -> env actions [N, ...]; recurrent (config.recurrent):
    act_rows(params, obs_stats, obs, keys, carry [N, ...]) -> (actions, carry after).

    Built from the config and the env's spec alone (no env is resolved): the network
    that `make_network(config, spec)` describes, the normalisation of `rollout.observe`,
    and continuous actions clipped (or squashed) into the spec's bounds.
    """
    network = make_network(config, spec)

    def to_env(dist, keys):
        action = dist.mode() if deterministic else sample_rows(dist, keys)
        action = env_action(dist, action)
        if not spec.discrete:
            action = jnp.clip(action, spec.action_low, spec.action_high)
        return action

    if config.recurrent is not None:

        def act_sequence_rows(params, obs_stats, obs, keys, carry):
            policy_obs = observe(config, obs_stats, obs)
            carry, dist = network.apply(params, carry, policy_obs, method="policy_step")
            return to_env(dist, keys), carry

        return act_sequence_rows

    def act_rows(params, obs_stats, obs, keys):
        dist = network.apply(params, observe(config, obs_stats, obs), method="policy")
        return to_env(dist, keys)

    return act_rows


def row_keys(key: jax.Array | None, n: int, deterministic: bool, name: str) -> jax.Array | None:
    """One key per row from the caller's `key`; None when deterministic (the mode
    draws nothing, and an exported policy then holds no random operation)."""
    if deterministic:
        return None
    if key is None:
        raise ValueError(f"{name}(deterministic=False): the policy needs a key")
    return jax.random.split(as_key(key), n)


@dataclasses.dataclass(frozen=True, eq=False)
class RecurrentAct:
    """A recurrent policy: `act(obs, carry, key=None) -> (action, carry)`.

        carry = act.initial_carry()                 # one env (or initial_carry((n,)))
        action, carry = act(obs, carry, key)
        carry = act.reset(carry, done)              # after an episode ends

    obs is one raw observation or a batch; the carry has the same leading shape
    (`initial_carry(batch_shape)`), and the one returned is the state after this
    step. Pure and jittable. Reset the carry (or start a new one) whenever the
    env's episode ends, as training does.
    """

    act_rows: Callable[..., Any] = dataclasses.field(repr=False)
    config: Config = dataclasses.field(repr=False)
    spec: EnvSpec = dataclasses.field(repr=False)
    params: Any = dataclasses.field(repr=False)
    obs_stats: ObsStats = dataclasses.field(repr=False)
    deterministic: bool = False
    name: str = "make_policy"

    recurrent = True  # as Policy.recurrent: the policy keeps a carry between steps

    def initial_carry(self, batch_shape: tuple[int, ...] = ()) -> Any:
        """The state before an episode's first step, for `batch_shape` envs (zeros)."""
        return cell_carry(self.config.recurrent, self.config.recurrent_size, tuple(batch_shape))

    def reset(self, carry: Any, done: jax.Array) -> Any:
        """`carry` back at the initial state wherever `done` (per env) is True."""
        return reset_carry(carry, jnp.asarray(done))

    def __call__(
        self, obs: Any, carry: Any = None, key: jax.Array | None = None
    ) -> tuple[Any, Any]:
        leaves = jax.tree.leaves(carry)
        if not leaves or any(jnp.issubdtype(x.dtype, jax.dtypes.prng_key) for x in leaves):
            raise TypeError(
                f"{self.name}: config.recurrent={self.config.recurrent!r}, so the policy "
                "is act(obs, carry, key=None) -> (action, carry); start with "
                "carry = act.initial_carry(batch_shape)"
            )
        rows, batched = policy_input_rows(self.config, self.spec, obs, self.name)
        n = jax.tree.leaves(rows)[0].shape[0]
        carry_rows = jax.tree.map(lambda c: jnp.reshape(c, (n, c.shape[-1])), carry)
        keys = row_keys(key, n, self.deterministic, self.name)
        action, carry_rows = self.act_rows(self.params, self.obs_stats, rows, keys, carry_rows)
        if batched:
            shape = jax.tree.leaves(carry)[0].shape
            return action, jax.tree.map(lambda c: c.reshape(shape), carry_rows)
        return action[0], jax.tree.map(lambda c: c[0], carry_rows)


def policy_from_spec(
    config: Config,
    spec: EnvSpec,
    params: Any,
    obs_stats: ObsStats,
    deterministic: bool = False,
    name: str = "make_policy",
) -> Callable[..., Any]:
    """The `act(obs, key=None) -> action` of `make_policy` (a `RecurrentAct` for a
    recurrent config), from the config, the env's spec and the arrays (no env is
    resolved); `name` is used in its error messages."""
    act_rows = policy_rows(config, spec, deterministic)
    if config.recurrent is not None:
        return RecurrentAct(act_rows, config, spec, params, obs_stats, deterministic, name)

    def act(obs: Any, key: jax.Array | None = None) -> jax.Array:
        rows, batched = policy_input_rows(config, spec, obs, name)
        n = jax.tree.leaves(rows)[0].shape[0]
        keys = row_keys(key, n, deterministic, name)
        action = act_rows(params, obs_stats, rows, keys)
        return action if batched else action[0]

    return act


def policy_keys(config: Config, spec: EnvSpec) -> tuple[str, ...]:
    """The dict keys a policy needs: its inputs, and the action mask when the env has
    one; () for a single-array observation."""
    keys = input_keys(spec, config.policy_obs_key)
    if keys is None:
        return ()
    return (*keys, MASK_KEY) if spec.has_mask else keys


def policy_input_rows(config: Config, spec: EnvSpec, obs: Any, name: str) -> tuple[Any, bool]:
    """(rows [N, ...] as the learner stores them, whether `obs` was a batch) for one
    raw observation or a batch. A dict needs the policy's keys only (others are
    ignored); a single vector may come in the env's shape or flattened."""
    if not spec.dict_obs:
        leaf = spec.leaves[0]
        x = jnp.asarray(obs)
        if leaf.kind == "vector":
            batched = tuple(x.shape) not in {tuple(spec.obs_shape), (spec.obs_dim,)}
            return x.astype(jnp.float32).reshape((-1 if batched else 1, spec.obs_dim)), batched
        batched = x.ndim > len(leaf.shape)
        return x.reshape((-1, *leaf.shape)).astype(leaf.dtype), batched
    needed = list(policy_keys(config, spec))
    if not isinstance(obs, dict):
        raise ValueError(f"{name}: the env observes a dict; pass a dict with the keys {needed}")
    rows, batched = {}, None
    for key in needed:
        if key not in obs:
            raise ValueError(
                f"{name}: observation key {key!r} is missing; the policy reads {needed}"
            )
        leaf = spec.leaf(key)
        x = jnp.asarray(obs[key])
        if batched is None:
            batched = x.ndim > len(leaf.env_shape)
        dtype = jnp.float32 if leaf.kind == "vector" else leaf.dtype
        rows[key] = x.reshape((-1 if batched else 1, *leaf.shape)).astype(dtype)
    return rows, bool(batched)


def make_policy(
    config: Config, state: TrainState, deterministic: bool = False
) -> Callable[[Any, jax.Array | None], jax.Array]:
    """A pure, jittable `act(obs, key=None) -> action` for the policy in `state`.

    obs: one raw observation (the env's shape, or flattened; a dict needs only the
    policy's keys and the action mask) or a batch of them with a leading axis; the
    action is what the env takes (int for discrete, [K] ints for MultiDiscrete, clipped
    or squashed into the bounds for continuous). Observation normalisation uses
    `state.obs_stats`. `key` is needed unless deterministic (the mode is used then).

    A recurrent config gives a `RecurrentAct`: `act(obs, carry, key=None) -> (action,
    carry)`, with `act.initial_carry(batch_shape)` and `act.reset(carry, done)`.
    """
    require_single_config(config, "make_policy")
    spec = make_setup(config).spec
    return policy_from_spec(config, spec, state.params, state.obs_stats, deterministic)


def evaluate(
    config: Config,
    state: TrainState,
    key: jax.Array,
    num_episodes: int = 10,
    deterministic: bool = True,
) -> EvalResult:
    """Run `num_episodes` episodes in parallel on fresh env instances (reset from `key`,
    independent of the training envs) and return their returns and lengths.

    Jitted; the same key gives the same result. Episodes end at termination or at the
    env's time limit (Config.episode_length or the env's own).
    """
    require_single_config(config, "evaluate")
    if isinstance(num_episodes, bool) or not isinstance(num_episodes, int) or num_episodes <= 0:
        raise ValueError(f"evaluate: num_episodes={num_episodes!r} must be a positive integer")
    return evaluate_params(
        config, state.params, state.obs_stats, as_key(key), num_episodes, deterministic
    )


class _EvalCarry(NamedTuple):
    env_state: Any
    obs: Any
    returns: jax.Array
    lengths: jax.Array
    finished: jax.Array
    key: jax.Array
    step: jax.Array
    carry: Any = ()  # recurrent policies: the actor's cell state per episode


@functools.partial(jax.jit, static_argnums=(4, 5))
def evaluate_params(
    config: Config,
    params: Any,
    obs_stats: ObsStats,
    key: jax.Array,
    num_episodes: int,
    deterministic: bool,
) -> EvalResult:
    setup = make_setup(config)
    spec = setup.spec
    act = policy_rows(config, spec, deterministic)
    max_steps = getattr(setup.env_params, "max_steps_in_episode", None)
    reset_key, loop_key = jax.random.split(key)
    obs, env_state = reset_envs(
        setup.env, setup.env_params, jax.random.split(reset_key, num_episodes), spec
    )

    def not_done(c: _EvalCarry):
        running = ~jnp.all(c.finished)
        return running if max_steps is None else running & (c.step <= max_steps)

    def eval_step(c: _EvalCarry) -> _EvalCarry:
        key, act_key, env_key = jax.random.split(c.key, 3)
        act_keys = jax.random.split(act_key, num_episodes)
        if config.recurrent is None:
            action, carry = act(params, obs_stats, c.obs, act_keys), ()
        else:
            action, carry = act(params, obs_stats, c.obs, act_keys, c.carry)
        env_keys = split_step_keys(jax.random.split(env_key, num_episodes))
        # step_envs clips continuous actions again at the env boundary: a no-op here.
        out = step_envs(setup.env, setup.env_params, spec, env_keys, c.env_state, action)
        live = ~c.finished
        done = jnp.logical_or(out.terminated, out.truncated)
        return _EvalCarry(
            env_state=out.env_state,
            obs=out.obs,
            returns=c.returns + jnp.where(live, out.reward, 0.0),
            lengths=c.lengths + live.astype(jnp.int32),
            finished=c.finished | done,
            key=key,
            step=c.step + 1,
            carry=reset_carry(carry, done),
        )

    init = _EvalCarry(
        env_state=env_state,
        obs=obs,
        returns=jnp.zeros(num_episodes, jnp.float32),
        lengths=jnp.zeros(num_episodes, jnp.int32),
        finished=jnp.zeros(num_episodes, bool),
        key=loop_key,
        step=jnp.zeros((), jnp.int32),
        carry=()
        if config.recurrent is None
        else cell_carry(config.recurrent, config.recurrent_size, (num_episodes,)),
    )
    final = jax.lax.while_loop(not_done, eval_step, init)
    return EvalResult(final.returns, final.lengths)
