"""The adapter protocol: `check_env` passes on every adapter the trainer supports, and
fails, with a sentence naming the fault, on an env broken in each way it checks. The
broken envs are CartPole (or a probe) with one thing wrong."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from brax.envs.base import Env as BraxBaseEnv
from brax.envs.base import State as BraxState
from gymnax.environments import spaces
from gymnax.environments.classic_control.cartpole import CartPole

import purejaxppo
from purejaxppo import Config
from purejaxppo.envs import check_env
from purejaxppo.envs.check import EnvCheckError
from purejaxppo.envs.libraries import JumanjiEnv, LegacyGymnaxEnv
from purejaxppo.envs.probes import MaskedActions


class PointMass(BraxBaseEnv):
    """A user's own Brax env (a `brax.envs.Env` subclass, not a registered name): a
    unit mass on a line pushed by a force in [-1, 1]; reward -x^2; the episode
    terminates when |x| > 2. With `dict_obs`, the policy sees a noisy position
    ("state") and the critic also the true position and velocity
    ("privileged_state")."""

    def __init__(self, dict_obs: bool = False):
        self.dict_obs = dict_obs

    def _obs(self, q, key):
        noisy = q[:1] + 0.1 * jax.random.normal(key, (1,))
        if self.dict_obs:
            return {"state": noisy, "privileged_state": q}
        return q

    def reset(self, rng):
        k1, k2 = jax.random.split(rng)
        q = jnp.array([jax.random.uniform(k1, (), minval=-1.0, maxval=1.0), 0.0])
        zero = jnp.zeros(())
        return BraxState(q, self._obs(q, k2), zero, zero, {}, {"key": k2})

    def step(self, state, action):
        x, v = state.pipeline_state
        v = 0.9 * v + 0.1 * jnp.clip(action[0], -1.0, 1.0)
        x = x + 0.1 * v
        q = jnp.stack([x, v])
        key, sub = jax.random.split(state.info["key"])
        done = (jnp.abs(x) > 2.0).astype(jnp.float32)
        return state.replace(
            pipeline_state=q,
            obs=self._obs(q, sub),
            reward=-(x**2),
            done=done,
            info={"key": key},
        )

    @property
    def observation_size(self):
        return {"state": (1,), "privileged_state": (2,)} if self.dict_obs else 2

    @property
    def action_size(self) -> int:
        return 1

    @property
    def backend(self) -> str:
        return "custom"


ADAPTERS = [
    pytest.param("CartPole-v1", {}, id="gymnax-CartPole"),
    pytest.param("Pendulum-v1", {}, id="gymnax-Pendulum"),
    pytest.param("Breakout-MinAtar", {}, id="gymnax-MinAtar"),
    pytest.param("StatelessCartPole-v1", {}, id="own-StatelessCartPole"),
    pytest.param("probe/MemoryCue", {}, id="probe-MemoryCue"),
    pytest.param("probe/MaskedActions", {}, id="probe-MaskedActions"),
    pytest.param("probe/MultiDiscreteTarget", {"random_resets": False}, id="probe-MultiDiscrete"),
    pytest.param("probe/PrivilegedReward", {}, id="probe-dict"),
    pytest.param("probe/PixelActionReward", {}, id="probe-uint8-pixels"),
    pytest.param("probe/TwoStepDiscount", {"random_resets": False}, id="probe-fixed-start"),
    pytest.param("jumanji/Game2048-v1", {}, id="jumanji-masked"),
    # Snake ends at its time_limit through a termination: the adapter reports it as
    # the truncation it is (the check fails otherwise).
    pytest.param(
        JumanjiEnv("Snake-v1", num_rows=6, num_cols=6, time_limit=10), {}, id="jumanji-snake"
    ),
    pytest.param("jumanji/Maze-v0", {}, id="jumanji-nested-obs"),
    pytest.param("xminigrid/MiniGrid-EmptyRandom-6x6", {}, id="xminigrid"),
    pytest.param("craftax/Craftax-Classic-Symbolic-v1", {"num_steps": 24}, id="craftax-classic"),
    pytest.param("playground/CartpoleBalance", {}, id="playground-dm-control"),
    pytest.param(PointMass(), {}, id="brax-user-env"),
    pytest.param(PointMass(dict_obs=True), {}, id="brax-user-env-dict"),
]


@pytest.mark.parametrize(("env", "options"), ADAPTERS)
def test_every_adapter_keeps_the_protocol(env, options):
    report = check_env(env, **options)
    assert report.steps == options.get("num_steps", 64)
    # The shortened time limit is reached: truncations are seen (not terminations).
    if report.time_limit is not None and report.time_limit < 1000:
        assert report.truncations + report.terminations > 0


# ---- broken envs: one fault each ---------------------------------------------------


class TimeLimitAsTermination(CartPole):
    """Reports its time limit as a termination (Brax's merged `done`)."""

    def step_env(self, key, state, action, params):
        obs, state, reward, terminated, info = super().step_env(key, state, action, params)
        return obs, state, reward, terminated | (state.time >= params.max_steps_in_episode), info


class FinalObsIsResetObs(CartPole):
    """Its own step puts the post-reset observation in final_observation (what
    Brax's AutoResetWrapper effectively keeps)."""

    def step(self, key, state, action, params=None):
        obs, state, reward, terminated, truncated, info = super().step(key, state, action, params)
        return obs, state, reward, terminated, truncated, {**info, "final_observation": obs}


class IgnoresKey(CartPole):
    def reset_env(self, key, params):
        return super().reset_env(jax.random.key(0), params)


class TraceTimeRandomness(CartPole):
    """numpy randomness at trace time: baked into each compiled program differently."""

    def step_env(self, key, state, action, params):
        obs, state, reward, terminated, info = super().step_env(key, state, action, params)
        return obs, state, reward + np.random.default_rng().random(), terminated, info


class WrongObservationSpace(CartPole):
    def observation_space(self, params):
        return spaces.Box(-1.0, 1.0, (5,), jnp.float32)


class WrongObservationDtype(CartPole):
    def observation_space(self, params):
        return spaces.Box(-1, 1, (4,), jnp.int32)


class StepObsShapeChanges(CartPole):
    def step_env(self, key, state, action, params):
        obs, state, reward, terminated, info = super().step_env(key, state, action, params)
        return obs[:3], state, reward, terminated, info


class VectorReward(CartPole):
    def step_env(self, key, state, action, params):
        obs, state, reward, terminated, info = super().step_env(key, state, action, params)
        return obs, state, jnp.reshape(reward, (1,)), terminated, info


class NanReward(CartPole):
    def step_env(self, key, state, action, params):
        obs, state, reward, terminated, info = super().step_env(key, state, action, params)
        return obs, state, jnp.where(state.time > 3, jnp.nan, reward), terminated, info


class EarlyTruncation(CartPole):
    """Its own step truncates at half the time limit."""

    def step(self, key, state, action, params=None):
        obs, state, reward, terminated, truncated, info = super().step(key, state, action, params)
        early = state.time == params.max_steps_in_episode // 2
        return obs, state, reward, terminated, truncated | early, info


class NoLegalAction(MaskedActions):
    def action_mask(self, state, params):
        return jnp.zeros(self.num_actions, bool)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (TimeLimitAsTermination(), "reached the time limit.*reported terminated"),
        (FinalObsIsResetObs(), "final observation equals the reset observation"),
        (IgnoresKey(), "same observation to all 4 envs"),
        (TraceTimeRandomness(), "same key gave two different trajectories"),
        (WrongObservationSpace(), r"shape \(4,\), but observation_space says \(5,\)"),
        (WrongObservationDtype(), "dtype float32, but observation_space says int32"),
        (StepObsShapeChanges(), "step's observation differs from reset's"),
        (VectorReward(), "reward must be a float scalar"),
        (NanReward(), "non-finite reward"),
        (EarlyTruncation(), "truncated after 8 steps, not at the time limit of 16"),
        (NoLegalAction(), "action mask after reset allows no action"),
    ],
    ids=lambda x: type(x).__name__ if not isinstance(x, str) else "",
)
def test_check_env_names_each_fault(env, message):
    with pytest.raises(EnvCheckError, match=message) as info:
        check_env(env)
    assert str(info.value).startswith(f"check_env(env={env!r}): ")
    assert str(info.value).count(". ") == 0  # one sentence


class OldGymnaxCartPole(CartPole):
    """CartPole as gymnax wrote envs before 1.0: `done` includes the time limit, and
    `step` auto-resets and returns five values (no final observation)."""

    def step_env(self, key, state, action, params):
        obs, state, reward, terminated, info = super().step_env(key, state, action, params)
        return obs, state, reward, terminated | (state.time >= params.max_steps_in_episode), info

    def step(self, key, state, action, params=None):
        params = self.default_params if params is None else params
        k_step, k_reset = jax.random.split(key)
        obs, state, reward, done, info = self.step_env(k_step, state, action, params)
        obs_re, state_re = self.reset_env(k_reset, params)
        state = jax.tree.map(lambda r, s: jax.lax.select(done, r, s), state_re, state)
        return jax.lax.select(done, obs_re, obs), state, reward, done, info


def test_an_env_for_gymnax_before_1_0_is_refused_then_adapted():
    with pytest.raises(EnvCheckError, match=r"wrap an env written for gymnax before 1\.0"):
        check_env(OldGymnaxCartPole())
    report = check_env(LegacyGymnaxEnv(OldGymnaxCartPole()))
    assert report.truncations > 0  # its time limit, now a truncation


def test_library_ids_are_checked_when_the_config_is_built(monkeypatch):
    with pytest.raises(ValueError, match="did you mean jumanji/Snake-v1"):
        Config(env="jumanji/Snak-v1")
    with pytest.raises(ValueError, match="not a xminigrid environment"):
        Config(env="xminigrid/NoSuchGrid")
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "craftax" else real(name, *a)
    )
    with pytest.raises(ImportError, match=r"pip install 'purejaxppo\[craftax\]'"):
        Config(env="craftax/Craftax-Classic-Symbolic-v1")


def test_snakes_time_limit_is_a_truncation_and_a_death_a_termination():
    """Jumanji's Snake reports both through termination (discount 0). A snake that
    dies on the limit's own step reads as truncated (the two cannot be told apart)."""
    from purejaxppo.envs.gymnax_adapter import env_spec, reset_envs, step_envs

    env = JumanjiEnv("Snake-v1", num_rows=6, num_cols=6, time_limit=5)
    params, n = env.default_params, 64
    spec = env_spec(env, params)

    @jax.jit
    def run(key):
        _, state = reset_envs(env, params, jax.random.split(key, n), spec)

        def step(state, k):
            k_act, k_env = jax.random.split(k)
            action = jax.random.randint(k_act, (n,), 0, 4)
            out = step_envs(env, params, spec, jax.random.split(k_env, n), state, action)
            return out.env_state, (out.terminated, out.truncated)

        return jax.lax.scan(step, state, jax.random.split(key, 5))[1]

    terminated, truncated = map(np.asarray, run(jax.random.key(0)))
    assert not truncated[:-1].any()  # no time limit before step 5
    dead = terminated[:-1].any(axis=0)
    assert dead.any() and (~dead).any()  # random moves: some snakes died, some lived
    assert not (terminated[-1] & ~dead).any()  # a survivor's step 5 is not a termination
    np.testing.assert_array_equal(truncated[-1], ~dead)  # but a truncation


def test_a_brax_env_in_brax_training_wrappers_is_refused_before_compiling():
    from brax.envs.wrappers.training import EpisodeWrapper

    with pytest.raises(ValueError, match="inside EpisodeWrapper; pass the unwrapped env"):
        Config(env=EpisodeWrapper(PointMass(), episode_length=10, action_repeat=1))


@pytest.fixture(scope="module")
def point_mass_run():
    env = PointMass(dict_obs=True)
    config = Config(
        env=env,
        policy_obs_key="state",
        value_obs_key=("state", "privileged_state"),
        episode_length=50,
        num_envs=8,
        num_steps=50,
        total_timesteps=40_000,
        lr=3e-3,
        normalize_obs=True,
    )
    out = jax.jit(purejaxppo.train)(config, jax.random.key(0))
    return config, out


def test_a_users_brax_env_trains_through_config_and_evaluates_deterministically(point_mass_run):
    config, out = point_mass_run
    returns = np.asarray(out.metrics["episode_return"])
    assert np.isfinite(returns[-5:]).all()
    evaluate = jax.jit(lambda s, k: purejaxppo.evaluate(config, s, k, num_episodes=16).returns)
    first = evaluate(out.state, jax.random.key(1))
    np.testing.assert_array_equal(first, evaluate(out.state, jax.random.key(1)))
    # It learned to hold the mass near 0: better than the untrained policy.
    untrained = purejaxppo.init(config, jax.random.key(0))
    before = evaluate(untrained, jax.random.key(1))
    assert float(first.mean()) > float(before.mean()) + 1.0, (first.mean(), before.mean())
