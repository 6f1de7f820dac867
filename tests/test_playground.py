"""MuJoCo Playground: registry names and users' own `MjxEnv`s train through Config, dict
observations feed the asymmetric critic, the errors come before anything is built, and
episodes render offline to MP4 and GIF through the env's own renderer."""

from __future__ import annotations

import imageio
import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from ml_collections import config_dict
from mujoco import mjx
from mujoco_playground import MjxEnv, State, wrapper
from mujoco_playground._src import mjx_env
from PIL import Image

import purejaxppo
from purejaxppo import Config
from purejaxppo.acting.render import render_episode
from purejaxppo.envs import check_env, resolve_env
from purejaxppo.envs.playground import PlaygroundEnv

SLIDE_XML = """
<mujoco>
  <option timestep="0.05"/>
  <worldbody>
    <light pos="0 0 3"/>
    <body>
      <joint name="x" type="slide" axis="1 0 0" damping="0.5"/>
      <geom type="sphere" size="0.1" mass="1"/>
    </body>
  </worldbody>
  <actuator><motor joint="x" ctrlrange="-1 1" gear="2"/></actuator>
</mujoco>
"""


class SlidingMass(MjxEnv):
    """A user's own Playground env: a mass on a rail pushed by a motor; reward -x^2; the
    episode terminates when |x| > 2. The policy sees a noisy position ("state"), the
    critic also the true position and velocity ("privileged_state")."""

    def __init__(self):
        super().__init__(config_dict.create(ctrl_dt=0.05, sim_dt=0.05, episode_length=40))
        self._mj_model = mujoco.MjModel.from_xml_string(SLIDE_XML)
        self._mjx_model = mjx.put_model(self._mj_model)

    def _obs(self, data, key):
        noisy = data.qpos + 0.1 * jax.random.normal(key, (1,))
        return {"state": noisy, "privileged_state": jnp.concatenate([data.qpos, data.qvel])}

    def reset(self, rng):
        k1, k2, k3 = jax.random.split(rng, 3)
        qpos = jax.random.uniform(k1, (1,), minval=-1.0, maxval=1.0)
        data = mjx.forward(self._mjx_model, mjx_env.make_data(self._mj_model, qpos=qpos))
        zero = jnp.zeros(())
        return State(data, self._obs(data, k2), zero, zero, {}, {"rng": k3})

    def step(self, state, action):
        data = mjx_env.step(self._mjx_model, state.data, action, self.n_substeps)
        rng, key = jax.random.split(state.info["rng"])
        x = data.qpos[0]
        done = (jnp.abs(x) > 2.0).astype(jnp.float32)
        return state.replace(
            data=data, obs=self._obs(data, key), reward=-(x**2), done=done, info={"rng": rng}
        )

    @property
    def xml_path(self) -> str:
        return "<string>"

    @property
    def action_size(self) -> int:
        return 1

    @property
    def mj_model(self):
        return self._mj_model

    @property
    def mjx_model(self):
        return self._mjx_model


def test_registry_names_resolve_with_the_envs_own_time_limit_and_jax_impl():
    env, params = resolve_env("playground/CartpoleBalance")
    assert isinstance(env, PlaygroundEnv)
    assert env.name == "playground/CartpoleBalance"
    assert params.max_steps_in_episode == 1000  # the env's config: episode_length
    assert env.brax_env._config.impl == "jax"  # MJX's JAX implementation, runs on CPU
    space = env.action_space(params)
    assert (space.shape, float(space.low), float(space.high)) == ((1,), -1.0, 1.0)
    repeated, params = resolve_env("playground/CartpoleBalance", action_repeat=4)
    assert repeated.action_repeat == 4 and params.max_steps_in_episode == 250


def test_errors_come_when_the_config_is_built(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="did you mean playground/CartpoleBalance"):
        Config(env="playground/CartpoleBalanc")
    # Locomotion envs need the Menagerie, which Playground would clone from GitHub.
    monkeypatch.setattr(mjx_env, "MENAGERIE_PATH", tmp_path / "no-menagerie")
    with pytest.raises(ValueError, match=r"MuJoCo Menagerie.*offline"):
        Config(env="playground/Go1JoystickFlatTerrain")
    # Playground's training wrappers fold the time limit into done: refused.
    wrapped = wrapper.wrap_for_brax_training(SlidingMass(), episode_length=40)
    with pytest.raises(ValueError, match="unwrapped env"):
        Config(env=wrapped)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    with pytest.raises(ImportError, match=r"purejaxppo\[playground\]"):
        Config(env="playground/CartpoleBalance")


def test_a_users_playground_env_keeps_the_protocol():
    report = check_env(SlidingMass())
    assert report.truncations > 0
    assert {leaf.key for leaf in report.spec.obs_leaves} == {"state", "privileged_state"}


@pytest.fixture(scope="module")
def sliding_run():
    config = Config(
        env=SlidingMass(),
        policy_obs_key="state",
        value_obs_key=("state", "privileged_state"),
        num_envs=8,
        num_steps=40,
        total_timesteps=32_000,
        lr=3e-3,
        normalize_obs=True,
    )
    return config, jax.jit(purejaxppo.train)(config, jax.random.key(0))


def test_a_users_env_with_privileged_critic_trains_and_evaluates_deterministically(sliding_run):
    config, out = sliding_run
    evaluate = jax.jit(lambda s, k: purejaxppo.evaluate(config, s, k, num_episodes=16).returns)
    first = evaluate(out.state, jax.random.key(1))
    np.testing.assert_array_equal(first, evaluate(out.state, jax.random.key(1)))
    before = evaluate(purejaxppo.init(config, jax.random.key(0)), jax.random.key(1))
    # It learned to bring the mass to x = 0 and hold it there.
    assert float(first.mean()) > float(before.mean()) + 1.0, (first.mean(), before.mean())


def test_episodes_render_to_mp4_and_gif_offline(tmp_path):
    config = Config(env="playground/CartpoleBalance")
    act = purejaxppo.make_policy(config, purejaxppo.init(config, jax.random.key(0)))
    mp4 = render_episode(config, act, tmp_path / "balance.mp4", jax.random.key(1), max_steps=12)
    assert (mp4.length, mp4.num_frames, mp4.terminated) == (12, 13, False)
    reader = imageio.get_reader(mp4.path)
    assert reader.count_frames() == 13
    assert reader.get_meta_data()["fps"] == pytest.approx(100.0)  # ctrl_dt = 0.01 s
    frame = reader.get_data(0)
    assert frame.shape == (240, 320, 3) and frame.std() > 1.0  # a picture, not blank
    gif = render_episode(config, act, tmp_path / "balance.gif", jax.random.key(1), max_steps=5)
    with Image.open(gif.path) as image:
        assert image.n_frames == gif.num_frames == 6
    with pytest.raises(ValueError, match=r"\.mp4 or \.gif"):
        render_episode(config, act, tmp_path / "balance.html", jax.random.key(1))
