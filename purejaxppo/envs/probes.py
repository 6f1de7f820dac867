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
    MaskedActions               action masking: illegal actions pay most (10), so
                                only a masked policy picks the best legal one
    MultiDiscreteTarget         the MultiDiscrete policy: one categorical head per
                                sub-action, each with its own target (optimum 1)
    PrivilegedReward            an asymmetric critic: the return (V = s) is in
                                obs["privileged_state"], absent from obs["state"]
    PixelActionReward           the image (CNN) path: uint8 pixels, the rewarded
                                action is the stripe holding the bright block
    MemoryCue                   memory (recurrent policies): recall a cue shown
                                only at the first step

Usage::

    from purejaxppo.envs.probes import ConstantRewardTimeLimit

    config = Config(env=ConstantRewardTimeLimit(), gamma=0.9, ...)
    out = jax.jit(train)(config, jax.random.key(0))
    setup = make_setup(config)
    setup.network.apply(out.state.params, jnp.zeros((1, 1)), method="value")  # ~ 10

Observations are float32 vectors, except MaskedActions and PrivilegedReward (dicts
of arrays, see their docstrings) and PixelActionReward (a uint8 image [size, size,
channels]). MultiDiscreteTarget takes int32 [K] actions from a
`purejaxppo.envs.spaces.MultiDiscrete` action space. All probes follow the gymnax
>= 1.0 API (`step` returns terminated and truncated separately, with the pre-reset
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

from purejaxppo.envs.spaces import MultiDiscrete

__all__ = [
    "ActionDependentReward",
    "ConstantReward",
    "ConstantRewardTimeLimit",
    "ContinuousTargetAction",
    "MaskedActions",
    "MemoryCue",
    "MemoryCueState",
    "MultiDiscreteTarget",
    "ObservationDependentReward",
    "PixelActionReward",
    "PrivilegedReward",
    "ProbeParams",
    "ProbeState",
    "TreeProbeState",
    "TwoStepDiscount",
]


@struct.dataclass
class ProbeState(environment.EnvState):
    """The current observation and the step count within the episode."""

    obs: jax.Array
    time: jax.Array


@struct.dataclass
class TreeProbeState(environment.EnvState):
    """Like ProbeState, but `obs` is kept as the env built it: a dict of arrays or a
    uint8 image, not cast to float32."""

    obs: Any
    time: jax.Array


@struct.dataclass
class MemoryCueState(environment.EnvState):
    """ProbeState plus the episode's cue (int32), which the observation shows only at
    the first step."""

    obs: jax.Array
    time: jax.Array
    cue: jax.Array


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

    def _start_tree(self, obs: Any) -> tuple[Any, TreeProbeState]:
        """`_start` for dict or uint8 observations: the dtypes are kept."""
        obs = jax.tree.map(jnp.asarray, obs)
        return obs, TreeProbeState(obs=obs, time=jnp.zeros((), jnp.int32))

    def _next_tree(
        self, state: TreeProbeState, obs: Any, reward: jax.Array, terminated: jax.Array
    ) -> tuple[Any, TreeProbeState, jax.Array, jax.Array, dict[str, Any]]:
        """`_next` for dict or uint8 observations: the dtypes are kept."""
        obs = jax.tree.map(jnp.asarray, obs)
        new_state = TreeProbeState(obs=obs, time=state.time + 1)
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


class MaskedActions(_Probe):
    """Observation {"observation": float32 [num_actions], "action_mask": bool
    [num_actions]}: a random legal-action mask, drawn at reset with at least 2 legal
    and at least 1 illegal action, and "observation" the same mask as float32.
    One-step episodes.

    An illegal action pays 10 (the trap: it would pay most); a legal action `a` pays
    (a + 1) / num_actions. Correct policy (with masking): the highest-index legal
    action, `best_action(obs)`. An unmasked policy drifts to the illegal actions.
    """

    def __init__(self, num_actions: int = 6):
        super().__init__()
        if int(num_actions) < 3:
            raise ValueError(
                f"MaskedActions: num_actions must be >= 3 (2 legal + 1 illegal), "
                f"got {num_actions!r}"
            )
        self.obs_dim = int(num_actions)
        self._num_actions = int(num_actions)

    def observation_space(self, params: ProbeParams) -> spaces.Dict:
        n = self._num_actions
        return spaces.Dict(
            {
                "observation": spaces.Box(0.0, 1.0, (n,), jnp.float32),
                "action_mask": spaces.Box(0, 1, (n,), jnp.bool_),
            }
        )

    def _mask(self, key: jax.Array) -> jax.Array:
        """Each action legal with probability 1/2; a draw with < 2 legal or no illegal
        action is fixed up from the same key (a random permutation p: p[0] and p[1]
        made legal, p[2] illegal)."""
        n = self._num_actions
        key_draw, key_perm = jax.random.split(key)
        mask = jax.random.bernoulli(key_draw, 0.5, (n,))
        order = jax.random.permutation(key_perm, n)
        fixed = mask.at[order[:2]].set(True).at[order[2]].set(False)
        legal = jnp.sum(mask)
        return jnp.where((legal < 2) | (legal == n), fixed, mask)

    def best_action(self, obs: dict[str, jax.Array]) -> jax.Array:
        """The highest legal index (int32), the optimal action; also batched
        ([..., num_actions] masks give [...] actions)."""
        mask = jnp.asarray(obs["action_mask"], jnp.bool_)
        index = jnp.arange(mask.shape[-1], dtype=jnp.int32)
        return jnp.max(jnp.where(mask, index, -1), axis=-1)

    def reset_env(self, key: jax.Array, params: ProbeParams) -> tuple[Any, TreeProbeState]:
        mask = self._mask(key)
        return self._start_tree({"observation": mask.astype(jnp.float32), "action_mask": mask})

    def step_env(self, key, state, action, params):
        action = jnp.asarray(action).reshape(()).astype(jnp.int32)
        legal = state.obs["action_mask"][action]
        reward = jnp.where(legal, (action + 1) / self._num_actions, 10.0)
        return self._next_tree(state, state.obs, reward, True)


class MultiDiscreteTarget(_Probe):
    """Observation float32 zeros [1]; a MultiDiscrete(nvec) action, int [K];
    one-step episodes.

    Sub-action k has its own target, `targets[k] = (k + 1) % nvec[k]`; the reward
    is the fraction of sub-actions on target, mean_k(action[k] == targets[k]), so
    the optimum is 1 and each wrong sub-action costs 1/K. Tests a policy with one
    categorical head per sub-action (a single Categorical cannot express it).
    """

    def __init__(self, nvec: tuple[int, ...] = (3, 4, 5)):
        super().__init__()
        self.nvec = MultiDiscrete(nvec).nvec  # validated tuple of python ints

    @property
    def targets(self) -> tuple[int, ...]:
        return tuple((k + 1) % n for k, n in enumerate(self.nvec))

    @property
    def num_actions(self) -> int:
        """The total number of logits over all heads, sum(nvec)."""
        return sum(self.nvec)

    def action_space(self, params: ProbeParams | None = None) -> MultiDiscrete:
        return MultiDiscrete(self.nvec)

    def reset_env(self, key: jax.Array, params: ProbeParams) -> tuple[jax.Array, ProbeState]:
        return self._start(jnp.zeros(1))

    def step_env(self, key, state, action, params):
        action = jnp.asarray(action).reshape(len(self.nvec))
        hits = action == jnp.asarray(self.targets, action.dtype)
        return self._next(state, state.obs, jnp.mean(hits.astype(jnp.float32)), True)


class PrivilegedReward(_Probe):
    """Observation {"state": float32 [2] of standard-normal noise, "privileged_state":
    float32 [1] holding a random sign s in {-1, +1}}; Discrete(2) actions that do
    not matter; reward s; one-step episodes.

    Correct values: a critic that reads "privileged_state" predicts the return
    exactly (V = s); one that reads only "state" can do no better than V = 0. Tests
    the asymmetric (privileged) critic's input routing.
    """

    def __init__(self):
        super().__init__()
        self._num_actions = 2

    def observation_space(self, params: ProbeParams) -> spaces.Dict:
        return spaces.Dict(
            {
                "state": spaces.Box(-jnp.inf, jnp.inf, (2,), jnp.float32),
                "privileged_state": spaces.Box(-1.0, 1.0, (1,), jnp.float32),
            }
        )

    def reset_env(self, key: jax.Array, params: ProbeParams) -> tuple[Any, TreeProbeState]:
        key_noise, key_sign = jax.random.split(key)
        sign = jnp.where(jax.random.bernoulli(key_sign), 1.0, -1.0).astype(jnp.float32)
        noise = jax.random.normal(key_noise, (2,), jnp.float32)
        return self._start_tree({"state": noise, "privileged_state": sign[None]})

    def step_env(self, key, state, action, params):
        return self._next_tree(state, state.obs, state.obs["privileged_state"][0], True)


class PixelActionReward(_Probe):
    """Observation a uint8 image [size, size, channels], 0 except for a block of 255s
    in one of `num_actions` vertical stripes; reward 1 if the action is that
    stripe's index, else 0; one-step episodes.

    Stripe k spans columns [k * size // num_actions, (k + 1) * size // num_actions);
    the block fills the stripe's width and `size // num_actions` rows starting at a
    random row. The stripe is drawn at reset. Correct policy: the stripe index, V = 1
    under it. Tests the image path (uint8 input, scaling, a CNN torso).
    """

    def __init__(self, size: int = 10, channels: int = 1, num_actions: int = 2):
        super().__init__()
        self.size = int(size)
        self.channels = int(channels)
        self._num_actions = int(num_actions)
        if self._num_actions < 1 or self.channels < 1:
            raise ValueError(
                f"PixelActionReward: num_actions and channels must be >= 1, got "
                f"num_actions={num_actions!r}, channels={channels!r}"
            )
        if self.size < self._num_actions:
            raise ValueError(
                f"PixelActionReward: size must be >= num_actions (one column per stripe "
                f"at least), got size={size!r}, num_actions={num_actions!r}"
            )

    def observation_space(self, params: ProbeParams) -> spaces.Box:
        return spaces.Box(0, 255, (self.size, self.size, self.channels), jnp.uint8)

    def stripe_bounds(self, stripe: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The columns [low, high) of stripe `stripe`."""
        stripe = jnp.asarray(stripe, jnp.int32)
        n = self._num_actions
        return stripe * self.size // n, (stripe + 1) * self.size // n

    def stripe_of(self, obs: jax.Array) -> jax.Array:
        """The index of the stripe holding the block of one image (int32)."""
        column = jnp.argmax(jnp.any(obs > 0, axis=(0, 2)))
        lows = jnp.arange(self._num_actions, dtype=jnp.int32) * self.size // self._num_actions
        return jnp.sum(column >= lows).astype(jnp.int32) - 1

    def reset_env(self, key: jax.Array, params: ProbeParams) -> tuple[jax.Array, TreeProbeState]:
        key_stripe, key_row = jax.random.split(key)
        stripe = jax.random.randint(key_stripe, (), 0, self._num_actions)
        height = self.size // self._num_actions
        row = jax.random.randint(key_row, (), 0, self.size - height + 1)
        low, high = self.stripe_bounds(stripe)
        rows = jnp.arange(self.size)[:, None]
        cols = jnp.arange(self.size)[None, :]
        block = (rows >= row) & (rows < row + height) & (cols >= low) & (cols < high)
        image = jnp.where(block, 255, 0).astype(jnp.uint8)
        image = jnp.broadcast_to(image[:, :, None], (self.size, self.size, self.channels))
        return self._start_tree(image)

    def step_env(self, key, state, action, params):
        correct = jnp.asarray(action).reshape(()) == self.stripe_of(state.obs)
        return self._next_tree(state, state.obs, jnp.where(correct, 1.0, 0.0), True)


class MemoryCue(_Probe):
    """A cue c drawn uniformly from `num_cues` at reset, shown only in the first
    observation; `length` steps later the agent must name it. Discrete(num_cues)
    actions.

    Observation float32 [num_cues + 1]: one_hot(c) then 0 at step 0 (the reset
    observation), zeros at steps 1 .. length - 2, and zeros then 1 (the "answer now"
    flag) at the last step, length - 1. Reward 0 on every step but the last, which
    pays 1 if the action is c (else 0) and terminates the episode.

    Correct policy: answer c at the flag, return 1; a memoryless policy (one that does
    not carry the cue across steps, e.g. a feed-forward MLP) gets 1 / num_cues in
    expectation. Tests a recurrent policy's memory and the resetting of its hidden
    state at episode ends.
    """

    def __init__(self, num_cues: int = 2, length: int = 4):
        super().__init__()
        if int(num_cues) < 2:
            raise ValueError(
                f"MemoryCue: num_cues must be >= 2 (one cue needs no memory), got {num_cues!r}"
            )
        if int(length) < 2:
            raise ValueError(
                f"MemoryCue: length must be >= 2 (the cue step, then the answer step), "
                f"got {length!r}"
            )
        self.num_cues = int(num_cues)
        self.length = int(length)
        self.obs_dim = self.num_cues + 1
        self._num_actions = self.num_cues

    def observation_space(self, params: ProbeParams) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (self.obs_dim,), jnp.float32)

    def _observe(self, time: jax.Array, cue: jax.Array) -> jax.Array:
        """The observation at step `time` of an episode with cue `cue`."""
        shown = jnp.where(time == 0, jax.nn.one_hot(cue, self.num_cues), 0.0)
        flag = jnp.where(time == self.length - 1, 1.0, 0.0)
        return jnp.concatenate([shown, flag[None]]).astype(jnp.float32)

    def reset_env(self, key: jax.Array, params: ProbeParams) -> tuple[jax.Array, MemoryCueState]:
        cue = jax.random.randint(key, (), 0, self.num_cues, jnp.int32)
        time = jnp.zeros((), jnp.int32)
        obs = self._observe(time, cue)
        return obs, MemoryCueState(obs=obs, time=time, cue=cue)

    def step_env(self, key, state, action, params):
        last = state.time >= self.length - 1
        correct = jnp.asarray(action).reshape(()) == state.cue
        reward = jnp.where(last & correct, 1.0, 0.0).astype(jnp.float32)
        time = state.time + 1
        obs = self._observe(time, state.cue)
        new_state = MemoryCueState(obs=obs, time=time, cue=state.cue)
        return obs, new_state, reward, last, {}
