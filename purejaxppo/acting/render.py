"""Watching a policy: one episode drawn to a file.

    act = make_policy(config, out.state, deterministic=True)   # or load_policy(dir)
    render_episode(config, act, "cartpole.gif", jax.random.key(0))
    render_episode(config, act, "hopper.mp4", jax.random.key(0))  # config.env="brax/hopper"

gymnax envs are drawn by gymnax's own `Visualizer` into an animated GIF (classic control
needs pygame: `pip install "gymnasium[classic-control]"`). Brax envs are drawn offline by
Brax's own image renderer (`brax.io.image`, MuJoCo's renderer) and MuJoCo Playground
envs by their own MuJoCo renderer, into an MP4 (through imageio's bundled ffmpeg) or an
animated GIF at the env's control rate; a Brax episode can also become the HTML page of
Brax's viewer (`.html`, `brax.io.html.render`), which loads its JavaScript from a CDN
when opened. Headless Linux renders MuJoCo through EGL (`MUJOCO_GL=egl`, which
`import purejaxppo` sets unless the user chose a backend).
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo.acting.policy import require_single_config
from purejaxppo.config import Config
from purejaxppo.core.setup import resolve_config_env
from purejaxppo.envs import env_spec
from purejaxppo.envs.brax_adapter import BraxEnv
from purejaxppo.envs.gymnax_adapter import mask_hook, merge_mask
from purejaxppo.envs.playground import PlaygroundEnv

# Env names gymnax's Visualizer draws (gymnax 1.0.1, visualize/visualizer.py).
CLASSIC_CONTROL = (
    "Acrobot-v1",
    "CartPole-v1",
    "Pendulum-v1",
    "MountainCar-v0",
    "MountainCarContinuous-v0",
)
GYMNAX_DRAWABLE = (
    *CLASSIC_CONTROL,
    "Catch-bsuite",
    "Asterix-MinAtar",
    "Breakout-MinAtar",
    "Freeway-MinAtar",
    "Seaquest-MinAtar",
    "SpaceInvaders-MinAtar",
    "Pong-misc",
    "PointRobot-misc",
    "MetaMaze-misc",
    "FourRooms-misc",
)


class RenderResult(NamedTuple):
    """What `render_episode` ran and wrote."""

    path: Path  # the GIF, MP4 or HTML file written
    episode_return: float  # undiscounted env reward of the episode (unscaled)
    length: int  # agent steps taken
    terminated: bool  # ended in a terminal state (False: time limit or max_steps)
    num_frames: int  # states drawn: gymnax GIF, the state after each step (length);
    # Brax and Playground, the reset state and each step's (length + 1)


class Episode(NamedTuple):
    """One episode on the host: the unbatched env state before the first step and after
    each step (the pre-reset state at the end), and the rewards."""

    states: list[Any]  # [length + 1] env states
    rewards: np.ndarray  # [length] float32
    terminated: bool


def render_episode(
    config: Config,
    act: Callable[[jax.Array, jax.Array], jax.Array],
    path: str | os.PathLike,
    key: jax.Array,
    max_steps: int | None = None,
) -> RenderResult:
    """Run one episode of `config.env` with `act(obs, key) -> action` (as returned by
    `make_policy` or `load_policy`) and draw it to `path`.

    The env is built with the config's options (env_params, episode_length,
    action_repeat, brax_backend) and reset from `key`; the episode ends at termination,
    at the env's time limit, or after `max_steps` steps. gymnax envs are written as an
    animated GIF (`path` must end in .gif); Brax and MuJoCo Playground envs as a video
    (.mp4 or .gif) drawn offline, and Brax envs also as Brax's viewer page (.html).
    """
    if not isinstance(config, Config):
        raise TypeError(f"render_episode: config must be a purejaxppo.Config, got {type(config)}")
    require_single_config(config, "render_episode")
    if max_steps is not None and (
        isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps <= 0
    ):
        raise ValueError(f"render_episode: max_steps={max_steps!r} must be a positive integer")
    path = Path(path)
    env, env_params = resolve_config_env(config)
    kind = _check_path(env, config, path)
    episode = run_episode(env, env_params, act, key, max_steps)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "brax" and path.suffix.lower() == ".html":
        num_frames = _write_brax_html(env, episode, path)
    elif kind in ("brax", "playground"):
        num_frames = write_video(env.render_frames(episode.states), path, env.fps)
    else:
        num_frames = _write_gymnax_gif(env, env_params, episode, path)
    return RenderResult(
        path=path,
        episode_return=float(episode.rewards.sum(dtype=np.float64)),
        length=len(episode.rewards),
        terminated=episode.terminated,
        num_frames=num_frames,
    )


def run_episode(
    env: Any,
    env_params: Any,
    act: Callable[[jax.Array, jax.Array], jax.Array],
    key: jax.Array,
    max_steps: int | None = None,
) -> Episode:
    """One episode of an unbatched gymnax-API env, stepped from the host with a jitted
    step (no auto-reset, so the last state is the one the episode ended in)."""
    spec = env_spec(env, env_params)
    if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.wrap_key_data(key)
    reset_key, key = jax.random.split(key)

    hook = mask_hook(env)

    def with_mask(obs, env_state):  # as the adapter observes an env with the hook
        return obs if hook is None else merge_mask(obs, hook(env_state, env_params))

    @jax.jit
    def reset(k):
        obs, env_state = env.reset_env(k, env_params)
        return with_mask(obs, env_state), env_state

    recurrent = getattr(act, "recurrent", False) is True  # a recurrent run's policy

    @jax.jit
    def step(k, env_state, obs, carry):
        act_key, env_key = jax.random.split(k)
        if recurrent:
            action, carry = act(obs, carry, act_key)
        else:
            action = act(obs, act_key)
        if not spec.discrete:  # as at the env boundary in training
            action = jnp.clip(action, spec.action_low, spec.action_high)
        obs, env_state, reward, terminated, _ = env.step_env(env_key, env_state, action, env_params)
        truncated = env.is_truncated(env_state, env_params)
        return with_mask(obs, env_state), env_state, reward, terminated, truncated, carry

    obs, env_state = reset(reset_key)
    carry = act.initial_carry() if recurrent else ()
    states, rewards = [env_state], []
    terminated = False
    while max_steps is None or len(rewards) < max_steps:
        key, step_key = jax.random.split(key)
        obs, env_state, reward, term, trunc, carry = step(step_key, env_state, obs, carry)
        states.append(env_state)
        rewards.append(reward)
        terminated = bool(term)
        if terminated or bool(trunc):
            break
    return Episode(
        states=jax.device_get(states),
        rewards=np.asarray(jax.device_get(rewards), np.float32).reshape(-1),
        terminated=terminated,
    )


# What each kind of env renders to; the first suffix is the default.
SUFFIXES = {"playground": (".mp4", ".gif"), "brax": (".mp4", ".gif", ".html"), "gymnax": (".gif",)}
_RENDERS_TO = {
    "playground": "a MuJoCo Playground env renders to a video",
    "brax": "a Brax env renders to a video, or to Brax's HTML viewer",
    "gymnax": "a gymnax env renders to a GIF",
}


def render_kind(env: Any) -> str:
    """ "playground", "brax" or "gymnax": how an (adapted) env is drawn."""
    if isinstance(env, PlaygroundEnv):
        return "playground"
    return "brax" if isinstance(env, BraxEnv) else "gymnax"


def default_suffix(config: Config) -> str:
    """The file type `render_episode` writes for `config.env` unless told otherwise."""
    return SUFFIXES[render_kind(resolve_config_env(config)[0])][0]


def _check_path(env: Any, config: Config, path: Path) -> str:
    """The env's render kind, after checking that `path` has a suffix that kind
    renders to (and, for gymnax, that its Visualizer draws the env)."""
    kind = render_kind(env)
    if path.suffix.lower() not in SUFFIXES[kind]:
        raise ValueError(
            f"render_episode: path={str(path)!r} must end in {' or '.join(SUFFIXES[kind])} "
            f"({_RENDERS_TO[kind]})"
        )
    if kind == "gymnax":
        _check_drawable(env, config)
    return kind


def write_video(frames: np.ndarray, path: Path, fps: float) -> int:
    """Write RGB frames [T, H, W, 3] uint8 as an MP4 (H.264 through imageio's ffmpeg) or
    an animated GIF, by `path`'s suffix; returns the frames written."""
    require_video_writer(path.suffix.lower())
    import imageio.v3 as iio

    if path.suffix.lower() == ".gif":
        iio.imwrite(path, frames, extension=".gif", duration=1000.0 / fps, loop=0)
    else:
        # H.264 wants even sizes; macro_block_size=1 keeps the frames as drawn. ffmpeg
        # runs in a subprocess (fork then exec at once), which JAX warns about anyway.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called")
            iio.imwrite(
                path, frames, plugin="FFMPEG", extension=".mp4", fps=fps, macro_block_size=1
            )
    return len(frames)


def require_video_writer(suffix: str) -> None:
    """ImportError unless imageio (and, for an MP4, imageio-ffmpeg) is installed."""
    if importlib.util.find_spec("imageio") is None:
        raise ImportError(
            "render_episode: writing a video needs imageio: pip install 'purejaxppo[playground]'"
        )
    if suffix == ".mp4" and importlib.util.find_spec("imageio_ffmpeg") is None:
        raise ImportError(
            "render_episode: an MP4 needs imageio-ffmpeg (or write a .gif): "
            "pip install 'purejaxppo[playground]'"
        )


def video_suffix(config: Config) -> str:
    """The file type of `fit`'s videos for `config.env` (.mp4 for Brax and Playground,
    .gif for gymnax), after checking that the env can be drawn here: ValueError or
    ImportError (naming what to install) otherwise, before anything trains."""
    env, _ = resolve_config_env(config)
    kind = render_kind(env)
    if kind == "gymnax":
        _check_drawable(env, config)
        return ".gif"
    require_video_writer(".mp4")
    return ".mp4"


def _check_drawable(env: Any, config: Config) -> None:
    name = getattr(env, "name", None)
    if name not in GYMNAX_DRAWABLE:
        raise ValueError(
            f"render_episode: Config.env={config.env!r} (name {name!r}) cannot be drawn; "
            f"gymnax's Visualizer draws {', '.join(GYMNAX_DRAWABLE)}, and Brax envs "
            "('brax/<name>') render to MP4, GIF or HTML"
        )
    if name in CLASSIC_CONTROL and importlib.util.find_spec("pygame") is None:
        raise ImportError(
            f"render_episode: drawing {name} needs pygame (gymnax draws classic control "
            "through Gymnasium): pip install 'gymnasium[classic-control]'"
        )


def _write_gymnax_gif(env: Any, env_params: Any, episode: Episode, path: Path) -> int:
    """Animated GIF by gymnax's Visualizer, one frame per step: frame i shows the state
    after step i + 1, titled "Step i + 1" with the return so far. Returns the frames."""
    # Gymnasium's classic-control renderer starts pygame; on a headless machine without
    # sound its SDL audio/video probing prints ALSA errors for every frame.
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    from gymnax.visualize import Visualizer

    states = episode.states[1:]
    returns = np.cumsum(episode.rewards, dtype=np.float64)
    Visualizer(env, env_params, states, returns).animate(str(path))
    return len(states)


def _write_brax_html(env: BraxEnv, episode: Episode, path: Path) -> int:
    """Brax's viewer page for the episode's pipeline states, from the reset state on; the
    system's timestep is set to one agent step so that the page plays in real time.
    Returns the frames."""
    from brax.io import html

    brax_env = env.brax_env
    sys = brax_env.sys.tree_replace({"opt.timestep": brax_env.dt * env.action_repeat})
    states = [s.inner.pipeline_state for s in episode.states]
    path.write_text(html.render(sys, states, height="100vh", colab=False))
    return len(states)
