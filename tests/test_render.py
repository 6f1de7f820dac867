"""render_episode: one episode drawn to an animated GIF (gymnax's Visualizer), to an
MP4 or GIF drawn offline by Brax's MuJoCo renderer, or to Brax's HTML viewer; it ends at
termination, the env's time limit or max_steps. fit(video_every=N) writes one such video
of the first run every N updates and at the end."""

from __future__ import annotations

import base64
import json
import re
import zlib

import jax
import pytest
from PIL import Image

import purejaxppo
from purejaxppo import Config
from purejaxppo.acting.export import load_policy, save_policy
from purejaxppo.acting.render import RenderResult, render_episode


def _untrained(config: Config, deterministic: bool = False):
    return purejaxppo.make_policy(
        config, purejaxppo.init(config, jax.random.key(0)), deterministic=deterministic
    )


def test_cartpole_gif(tmp_path):
    pytest.importorskip("pygame")  # gymnax draws classic control through Gymnasium
    config = Config()
    path = tmp_path / "cartpole.gif"
    result = render_episode(config, _untrained(config), path, jax.random.key(1))
    assert isinstance(result, RenderResult)
    assert result.path == path
    # An untrained policy drops the pole long before CartPole's 500-step limit.
    assert result.terminated
    assert 1 < result.length < 500
    assert result.episode_return == result.length  # CartPole pays 1 per step
    with Image.open(result.path) as gif:
        assert gif.format == "GIF"
        assert gif.n_frames == result.num_frames == result.length


def test_gif_ends_at_time_limit_and_max_steps(tmp_path):
    # Breakout-MinAtar is drawn without pygame. The ball needs more than 5 steps to
    # reach the paddle row, so only the time limit can end these episodes.
    config = Config(env="Breakout-MinAtar", episode_length=5)
    state = purejaxppo.init(config, jax.random.key(0))
    policy = load_policy(save_policy(tmp_path / "policy", config, state))  # a loaded policy

    result = render_episode(config, policy, tmp_path / "a" / "limit.gif", jax.random.key(1))
    assert (result.length, result.terminated, result.num_frames) == (5, False, 5)
    with Image.open(result.path) as gif:
        assert gif.n_frames == 5

    result = render_episode(config, policy, tmp_path / "cap.gif", jax.random.key(1), max_steps=3)
    assert (result.length, result.terminated, result.num_frames) == (3, False, 3)
    with Image.open(result.path) as gif:
        assert gif.n_frames == 3


def test_brax_html(tmp_path):
    pytest.importorskip("brax")
    config = Config(env="brax/inverted_pendulum", num_envs=2)
    act = _untrained(config, deterministic=True)
    path = tmp_path / "pendulum.html"
    result = render_episode(config, act, path, jax.random.key(1), max_steps=20)
    assert 1 <= result.length <= 20
    assert result.num_frames == result.length + 1  # from the reset state on
    page = result.path.read_text()
    assert '<div id="brax-viewer"></div>' in page
    assert "viewer.js" in page
    # The page embeds the system and the trajectory as base64 zlib-compressed JSON.
    encoded = re.search(r'var system = "([^"]+)"', page).group(1)
    system = json.loads(zlib.decompress(base64.b64decode(encoded)))
    assert len(system["states"]["x"]) == result.num_frames


def test_brax_video_offline(tmp_path):
    pytest.importorskip("brax")
    iio = pytest.importorskip("imageio.v3")
    config = Config(env="brax/inverted_pendulum", num_envs=2)
    act = _untrained(config, deterministic=True)
    mp4 = render_episode(config, act, tmp_path / "pendulum.mp4", jax.random.key(1), max_steps=12)
    assert 1 <= mp4.length <= 12
    assert mp4.num_frames == mp4.length + 1  # the reset state, then each step's
    frames = iio.imread(mp4.path, plugin="FFMPEG")
    assert frames.shape == (mp4.num_frames, 240, 320, 3)
    assert frames.std() > 10  # a drawn scene, not a blank frame
    gif = render_episode(config, act, tmp_path / "pendulum.gif", jax.random.key(1), max_steps=4)
    with Image.open(gif.path) as image:
        assert image.n_frames == gif.num_frames == gif.length + 1
    with pytest.raises(ValueError, match=r"must end in \.mp4 or \.gif or \.html"):
        render_episode(config, act, tmp_path / "pendulum.avi", jax.random.key(1))


def test_fit_writes_videos_every_n_updates(tmp_path):
    # Catch is drawn without pygame and trains in a small program; the Brax video path
    # is test_brax_video_offline's.
    config = Config(
        env="Catch-bsuite", num_envs=4, num_steps=8, num_minibatches=2, total_timesteps=4 * 8 * 4
    )
    result = purejaxppo.fit(
        config, 0, out=tmp_path / "run", video_every=2, video_max_steps=6, num_seeds=2,
        progress=False, plot=False,
    )  # fmt: skip
    videos = sorted((result.run_dir / "videos").iterdir())
    assert [v.name for v in videos] == ["update_0000002.gif", "update_0000004.gif"]
    for video in videos:
        with Image.open(video) as gif:
            assert gif.n_frames == 6  # Catch's episodes last 9 steps: cut at 6


def test_video_options_fail_before_training(tmp_path):
    with pytest.raises(ValueError, match=r"video_every=2: videos are written to the run"):
        purejaxppo.fit(Config(), 0, video_every=2)
    with pytest.raises(ValueError, match=r"video_every=3: must be a multiple of chunk_updates=2"):
        purejaxppo.fit(Config(), 0, out=tmp_path / "a", video_every=3, chunk_updates=2)
    with pytest.raises(ValueError, match=r"video_max_steps=0"):
        purejaxppo.fit(Config(), 0, out=tmp_path / "b", video_every=2, video_max_steps=0)
    with pytest.raises(ValueError, match=r"Config\.env='Reacher-misc'.*cannot be drawn"):
        purejaxppo.fit(Config(env="Reacher-misc"), 0, out=tmp_path / "c", video_every=2)
    assert not (tmp_path / "c").exists()  # refused before the run directory is made


def test_render_errors(tmp_path):
    act = None  # never reached: every call fails before the episode runs
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"path='.*x\.html' must end in \.gif"):
        render_episode(Config(), act, tmp_path / "x.html", key)
    with pytest.raises(ValueError, match=r"Config\.env='Reacher-misc'.*cannot be drawn"):
        render_episode(Config(env="Reacher-misc"), act, tmp_path / "x.gif", key)
    with pytest.raises(ValueError, match=r"max_steps=0 must be a positive integer"):
        render_episode(Config(), act, tmp_path / "x.gif", key, max_steps=0)
    sweep = Config.sweep(Config(), lr=[1e-3, 3e-4])
    with pytest.raises(ValueError, match=r"config is a batch of 2 configs"):
        render_episode(sweep, act, tmp_path / "x.gif", key)
    assert not any(tmp_path.iterdir())
