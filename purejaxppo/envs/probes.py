"""Probe environments: tiny gymnax-API envs whose correct values and actions are
known in closed form.

When an agent fails to learn, run it on these first; each one isolates one part
of the algorithm, and the first probe that fails points at the bug:

    ConstantReward              value head and its loss (V = 1)
    ObservationDependentReward  value depends on the observation (V = +-1)
    TwoStepDiscount             discounting and bootstrapping (V = gamma, then 1)
    ActionDependentReward       the policy gradient (greedy action = observed index)
    ConstantRewardTimeLimit     truncation bootstraps, termination does not
                                (V = 1 / (1 - gamma), not the truncated return)
    ContinuousTargetAction      the Gaussian policy (mode -> target) and action
                                clipping at the env boundary

Usage::

    from purejaxppo.envs.probes import ConstantRewardTimeLimit

    config = Config(env=ConstantRewardTimeLimit(), gamma=0.9, ...)
    out = jax.jit(train)(config, jax.random.key(0))
    setup = make_setup(config)
    setup.network.apply(out.state.params, jnp.zeros((1, 1)), method="value")  # ~ 10

All observations are float32 vectors; all probes follow the gymnax >= 1.0 API
(`step` returns terminated and truncated separately, with the pre-reset
observation in `info["final_observation"]`). Instances with the same arguments
compare equal and hash alike, so a Config holding a fresh instance reuses the
compiled program of an earlier one.
"""

from __future__ import annotations

import inspect
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

__all__ = [
    "ActionDependentReward",
    "ConstantReward",
    "ConstantRewardTimeLimit",
    "ContinuousTargetAction",
    "ObservationDependentReward",
    "ProbeParams",
    "ProbeState",
    "TwoStepDiscount",
]


@struct.dataclass
class ProbeState(environment.EnvState):
    """The current observation and the step count within the episode."""

    obs: jax.Array
    time: jax.Array


@struct.dataclass
class ProbeParams(environment.EnvParams):
    """Only the time limit; probes that terminate on their own never reach it."""

    max_steps_in_episode: int = 1_000_000


class _Probe(environment.Environment[ProbeState, ProbeParams]):
    """Shared plumbing: value-based equality, one-step bookkeeping, spaces."""

    obs_dim: int = 1
    _num_actions: int = 1

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(vars(self).items()))))

    def __repr__(self) -> str:
        params = list(inspect.signature(type(self).__init__).parameters.values())[1:]
        named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        args = ", ".join(f"{p.name}={getattr(self, p.name)!r}" for p in params if p.kind in named)
        return f"{type(self).__name__}({args})"

    @property
    def default_params(self) -> ProbeParams:
        return ProbeParams()

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def num_actions(self) -> int:
        return self._num_actions

    def action_space(self, params: ProbeParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self._num_actions)

    def observation_space(self, params: ProbeParams) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (self.obs_dim,), jnp.float32)

    def _start(self, obs: jax.Array) -> tuple[jax.Array, ProbeState]:
        obs = jnp.asarray(obs, jnp.float32)
        return obs, ProbeState(obs=obs, time=jnp.zeros((), jnp.int32))

    def _next(
        self, state: ProbeState, obs: jax.Array, reward: jax.Array, terminated: jax.Array
    ) -> tuple[jax.Array, ProbeState, jax.Array, jax.Array, dict[str, Any]]:
        obs = jnp.asarray(obs, jnp.float32)
        new_state = ProbeState(obs=obs, time=state.time + 1)
        return obs, new_state, jnp.asarray(reward, jnp.float32), jnp.asarray(terminated), {}


class ConstantReward(_Probe):
    """Observation 0, reward 1, every episode one step long (terminated).

    Correct value: V(0) = 1. Tests that the value head can fit a constant.
    """

    def reset_env(self, key: jax.Array, params: ProbeParams) -> tuple[jax.Array, ProbeState]:
        return self._start(jnp.zeros(1))

    def step_env(self, key, state, action, params):
        return self._next(state, jnp.zeros(1), 1.0, True)


class ObservationDependentReward(_Probe):
    """Observation +1 or -1 at random, reward equal to it, one-step episodes.

    Correct values: V(+1) = +1, V(-1) = -1. Tests that the critic uses its input.
    """

    def reset_env(self, key: jax.Array, params: ProbeParams) -> tuple[jax.Array, ProbeState]:
        sign = jnp.where(jax.random.bernoulli(key), 1.0, -1.0)
        return self._start(sign[None])

    def step_env(self, key, state, action, params):
        return self._next(state, state.obs, state.obs[0], True)


class TwoStepDiscount(_Probe):
    """Observation 0, then 1; reward 0 then 1; the episode terminates after step 2.

    Correct values: V(0) = gamma, V(1) = 1. Tests discounting and bootstrapping
    across a non-terminal step.
    """

    def reset_env(self, key: jax.Array, params: ProbeParams) -> tuple[jax.Array, ProbeState]:
        return self._start(jnp.zeros(1))

    def step_env(self, key, state, action, params):
        last = state.time >= 1
        return self._next(state, jnp.ones(1), jnp.where(last, 1.0, 0.0), last)


class ActionDependentReward(_Probe):
    """Observation a random one-hot of `num_actions`; reward 1 if the action is the
    hot index, else 0; one-step episodes.

    Correct policy: greedy action = argmax(observation), V = 1 under it. Tests the
    policy gradient (with the observation, so a constant bias cannot solve it).
    """

    def __init__(self, num_actions: int = 2):
        super().__init__()
        self.obs_dim = int(num_actions)
        self._num_actions = int(num_actions)

    def reset_env(self, key: jax.Array, params: ProbeParams) -> tuple[jax.Array, ProbeState]:
        index = jax.random.randint(key, (), 0, self._num_actions)
        return self._start(jax.nn.one_hot(index, self._num_actions))

    def step_env(self, key, state, action, params):
        correct = jnp.asarray(action).reshape(()) == jnp.argmax(state.obs)
        return self._next(state, state.obs, jnp.where(correct, 1.0, 0.0), True)


class ConstantRewardTimeLimit(_Probe):
    """Observation 0, reward 1 every step, never terminates; the time limit
    (`max_steps_in_episode`, default 16) truncates each episode.

    The observation does not reveal the time, so the only consistent value is the
    infinite-horizon one: V = 1 / (1 - gamma) (10 for gamma = 0.9). An agent that
    treats the time limit as a termination instead learns the average truncated
    return, sum_{m=1..N} (1 - gamma^m) / (1 - gamma) / N (about 5.42 for N = 16,
    gamma = 0.9).

    terminate_at_limit=True reports the limit as a termination: the common bug,
    built in so that the difference can be demonstrated.
    """

    def __init__(self, max_steps: int = 16, terminate_at_limit: bool = False):
        super().__init__()
        self.max_steps = int(max_steps)
        self.terminate_at_limit = bool(terminate_at_limit)

    @property
    def default_params(self) -> ProbeParams:
        return ProbeParams(max_steps_in_episode=self.max_steps)

    def reset_env(self, key: jax.Array, params: ProbeParams) -> tuple[jax.Array, ProbeState]:
        return self._start(jnp.zeros(1))

    def step_env(self, key, state, action, params):
        at_limit = state.time + 1 >= params.max_steps_in_episode
        terminated = jnp.logical_and(self.terminate_at_limit, at_limit)
        return self._next(state, jnp.zeros(1), 1.0, terminated)


class ContinuousTargetAction(_Probe):
    """Observation 0, a 1-D action in [-1, 1], reward -(action - target)^2,
    one-step episodes.

    Correct policy: mode = target. The terminal observation (the
    `final_observation`) echoes the action the env received, unclipped by the env
    itself, so it shows whether the caller clipped actions to the bounds.
    """

    def __init__(self, target: float = 0.5):
        super().__init__()
        self.target = float(target)

    def action_space(self, params: ProbeParams | None = None) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (1,), jnp.float32)

    def reset_env(self, key: jax.Array, params: ProbeParams) -> tuple[jax.Array, ProbeState]:
        return self._start(jnp.zeros(1))

    def step_env(self, key, state, action, params):
        action = jnp.asarray(action, jnp.float32).reshape(1)
        reward = -jnp.sum((action - self.target) ** 2)
        return self._next(state, action, reward, True)
