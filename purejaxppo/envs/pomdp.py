"""Partially observed variants of gymnax environments, for recurrent policies.

    StatelessCartPole   CartPole-v1 with the velocities removed: the observation is
                        [x, theta] only, so a policy must infer the velocities from
                        successive observations (POPGym's StatelessCartPole)

Registered as the string id "StatelessCartPole-v1" (`envs.registry.OWN_ENVS`), so
`Config(env="StatelessCartPole-v1")` works like a gymnax id. The dynamics, rewards,
termination and the 500-step time limit (reported as truncation) are gymnax's CartPole
unchanged; gymnax's base `Environment.step` (auto-reset, `info["final_observation"]`)
is used as is. Instances compare equal and hash alike, so a Config holding a fresh
instance reuses the compiled program of an earlier one.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from gymnax.environments import spaces
from gymnax.environments.classic_control.cartpole import CartPole, EnvParams, EnvState

__all__ = ["StatelessCartPole"]


class StatelessCartPole(CartPole):
    """gymnax's CartPole-v1, observing only the cart position and the pole angle.

    Observation float32 [2]: [x, theta], entries 0 and 2 of CartPole's
    [x, x_dot, theta, theta_dot]. Actions Discrete(2), default params CartPole's
    (`max_steps_in_episode` 500); the state is CartPole's, velocities included.
    """

    def __init__(self):
        super().__init__()
        self.obs_shape = (2,)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(vars(self).items()))))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    @property
    def name(self) -> str:
        return "StatelessCartPole-v1"

    def get_obs(self, state: EnvState, params: EnvParams | None = None, key=None) -> jax.Array:
        """The positions of the state: [x, theta] (float32)."""
        return jnp.stack([state.x, state.theta]).astype(jnp.float32)

    def reset_env(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
        _, state = super().reset_env(key, params)
        return self.get_obs(state), state

    def step_env(
        self, key: jax.Array, state: EnvState, action: Any, params: EnvParams
    ) -> tuple[jax.Array, EnvState, jax.Array, jax.Array, dict[str, Any]]:
        _, state, reward, terminated, info = super().step_env(key, state, action, params)
        return self.get_obs(state), state, reward, terminated, info

    def observation_space(self, params: EnvParams) -> spaces.Box:
        high = jnp.array([params.x_threshold * 2, params.theta_threshold_radians * 2], jnp.float32)
        return spaces.Box(-high, high, (2,), dtype=jnp.float32)
