"""save_policy / load_policy: a loaded policy acts bitwise as make_policy did, without
resolving the env; batched runs are refused; missing and corrupt files give clear
errors; saving replaces an earlier policy only once the new one is complete."""

from __future__ import annotations

import importlib
import json

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import SMALL, assert_trees_equal

import purejaxppo
from purejaxppo import Config
from purejaxppo.acting.export import POLICY_ARRAYS, POLICY_JSON, Policy, load_policy, save_policy
from purejaxppo.core.setup import make_setup
from purejaxppo.envs import EnvSpec

PENDULUM = Config(env="Pendulum-v1", normalize_obs=True, continuous_dist="gaussian", **SMALL)


@pytest.fixture(scope="module")
def pendulum_out(train_jit) -> purejaxppo.TrainOutput:
    return jax.block_until_ready(train_jit.fn(PENDULUM, jax.random.key(1)))


def _assert_same_actions(config, state, path, obs):
    """The loaded policy's actions equal make_policy's bitwise: deterministic and
    stochastic (same key), on a batch and on one observation."""
    key = jax.random.key(7)
    for deterministic in (True, False):
        expected = purejaxppo.make_policy(config, state, deterministic)
        loaded = load_policy(path, deterministic=deterministic)
        assert loaded.deterministic is deterministic
        np.testing.assert_array_equal(loaded(obs, key), expected(obs, key))
        np.testing.assert_array_equal(loaded(obs[1], key), expected(obs[1], key))
    expected = purejaxppo.make_policy(config, state, deterministic=True)
    np.testing.assert_array_equal(load_policy(path, deterministic=True)(obs), expected(obs))


def test_cartpole_policy_round_trip(small_config, small_out, tmp_path):
    state = small_out.state
    path = save_policy(tmp_path / "cartpole", small_config, state)
    assert path == tmp_path / "cartpole"
    assert sorted(p.name for p in path.iterdir()) == sorted([POLICY_JSON, POLICY_ARRAYS])
    meta = json.loads((path / POLICY_JSON).read_text())
    assert meta["format_version"] == 1
    assert meta["purejaxppo_version"] == purejaxppo.__version__
    assert meta["env_spec"] == {
        "obs_shape": [4],
        "obs_dim": 4,
        "discrete": True,
        "action_dim": 2,
        "action_low": None,
        "action_high": None,
        "obs_leaves": [
            {"key": None, "shape": [4], "dtype": "float32", "kind": "vector", "env_shape": [4]}
        ],
        "action_nvec": None,
    }
    _assert_same_actions(small_config, state, path, state.obs)

    policy = load_policy(path)
    assert isinstance(policy, Policy)
    assert policy.config.to_dict() == small_config.to_dict()
    assert policy.spec == make_setup(small_config).spec
    assert policy.spec.leaves == EnvSpec(4, True, 2, None, None, (4,)).leaves  # one vector
    assert_trees_equal(policy.params, state.params)
    assert_trees_equal(policy.obs_stats, state.obs_stats)


def test_continuous_normalised_policy_round_trip(pendulum_out, tmp_path):
    state = pendulum_out.state
    assert float(state.obs_stats.count) > 0  # normalisation is not the identity
    path = save_policy(tmp_path / "pendulum", PENDULUM, state)
    _assert_same_actions(PENDULUM, state, path, state.obs)
    spec = load_policy(path).spec
    np.testing.assert_array_equal(spec.action_low, [-2.0])
    np.testing.assert_array_equal(spec.action_high, [2.0])
    assert spec.action_low.dtype == np.float32


def test_tanh_gaussian_policy_round_trip(tmp_path):
    # An initial state with made-up statistics: the squashing and the normalisation are
    # what is checked, and init costs no training compile.
    config = PENDULUM.replace(continuous_dist="tanh_gaussian", log_std_init=0.5)
    state = purejaxppo.init(config, jax.random.key(2))
    stats = state.obs_stats
    state = state._replace(obs_stats=stats._replace(mean=stats.mean + 0.5, var=stats.var * 3.0))
    path = save_policy(tmp_path / "tanh", config, state)
    _assert_same_actions(config, state, path, state.obs)


def test_loaded_policy_jits(pendulum_out, tmp_path):
    state = pendulum_out.state
    path = save_policy(tmp_path / "p", PENDULUM, state)
    policy = load_policy(path)
    key = jax.random.key(3)
    jitted = jax.jit(policy)(state.obs, key)
    expected = jax.jit(purejaxppo.make_policy(PENDULUM, state))(state.obs, key)
    np.testing.assert_array_equal(jitted, expected)
    np.testing.assert_allclose(jitted, policy(state.obs, key), rtol=1e-6, atol=1e-6)


def test_loading_never_builds_the_env(small_config, small_out, tmp_path, monkeypatch):
    # The training modules may already be loaded in this session, so "not in
    # sys.modules" cannot be checked; instead the ways to build the env's setup and spec
    # raise. (Config validation only checks the env id against the registry.)
    path = save_policy(tmp_path / "cartpole", small_config, small_out.state)

    def forbidden(*args, **kwargs):
        raise AssertionError("load_policy must not build the environment")

    train = importlib.import_module("purejaxppo.core.train")
    setup = importlib.import_module("purejaxppo.core.setup")
    envs = importlib.import_module("purejaxppo.envs")
    adapter = importlib.import_module("purejaxppo.envs.gymnax_adapter")
    policy_module = importlib.import_module("purejaxppo.acting.policy")
    for module, name in [
        (train, "make_setup"),
        (setup, "make_setup"),
        (setup, "env_spec"),
        (setup, "resolve_env"),
        (train, "reset_envs"),
        (policy_module, "make_setup"),
        (envs, "env_spec"),
        (adapter, "env_spec"),
    ]:
        monkeypatch.setattr(module, name, forbidden)
    policy = load_policy(path, deterministic=True)
    obs = small_out.state.obs
    assert policy(obs).shape == (small_config.num_envs,)
    assert jax.jit(policy)(obs[0]).shape == ()


def test_batched_runs_are_refused(small_config, small_out, tmp_path):
    state = small_out.state
    two = jax.tree.map(lambda x: jnp.stack([x, x]), state)
    with pytest.raises(ValueError, match=r"state is a batch of 2 runs.*x\[i\], state\)"):
        save_policy(tmp_path / "a", small_config, two)
    sweep = Config.sweep(small_config, lr=[1e-3, 3e-4])
    with pytest.raises(ValueError, match=r"config is a batch of 2.*config\.unstack\(\)\[i\]"):
        save_policy(tmp_path / "b", sweep, two)
    with pytest.raises(TypeError, match=r"out\.state"):
        save_policy(tmp_path / "c", small_config, small_out)
    assert not any(tmp_path.iterdir())


def test_config_without_plain_data_form_is_refused(small_config, small_out, tmp_path):
    env, _ = gymnax.make("CartPole-v1")
    config = small_config.replace(env=env)
    with pytest.raises(ValueError, match=r"Config\.env=.*no plain-data form"):
        save_policy(tmp_path / "a", config, small_out.state)
    assert not any(tmp_path.iterdir())


def test_state_of_another_network_is_refused(small_out, tmp_path):
    with pytest.raises(ValueError, match=r"save_policy: state: the parameters do not fit"):
        save_policy(tmp_path / "a", PENDULUM, small_out.state)


def test_missing_and_corrupt_files(small_config, small_out, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere does not exist"):
        load_policy(tmp_path / "nowhere")
    path = save_policy(tmp_path / "p", small_config, small_out.state)
    good_arrays = (path / POLICY_ARRAYS).read_bytes()
    good_meta = (path / POLICY_JSON).read_text()

    (path / POLICY_ARRAYS).unlink()
    with pytest.raises(FileNotFoundError, match=rf"p/{POLICY_ARRAYS} is missing"):
        load_policy(path)
    (path / POLICY_ARRAYS).write_bytes(b"\x93 not msgpack at all" + good_arrays[:40])
    with pytest.raises(ValueError, match=rf"p/{POLICY_ARRAYS} is not readable policy arrays"):
        load_policy(path)
    (path / POLICY_ARRAYS).write_bytes(good_arrays)

    (path / POLICY_JSON).write_text(good_meta[:50])
    with pytest.raises(ValueError, match=rf"p/{POLICY_JSON} is not readable JSON"):
        load_policy(path)
    meta = json.loads(good_meta)
    (path / POLICY_JSON).write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(ValueError, match=r"format_version=99; this purejaxppo reads .*=1"):
        load_policy(path)
    (path / POLICY_JSON).unlink()
    with pytest.raises(FileNotFoundError, match=rf"p/{POLICY_JSON} is missing"):
        load_policy(path)


def test_saving_replaces_an_existing_policy(small_config, small_out, pendulum_out, tmp_path):
    path = tmp_path / "runs" / "policy"  # parents are created
    save_policy(path, small_config, small_out.state)
    save_policy(path, PENDULUM, pendulum_out.state)
    assert load_policy(path).config.env == "Pendulum-v1"
    assert [p.name for p in path.parent.iterdir()] == ["policy"]  # no temporary leftovers

    # A save that fails half-way leaves the earlier policy as it was.
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    export = importlib.import_module("purejaxppo.acting.export")
    calls = []

    def failing_fsync(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError("disk full")

    with pytest.MonkeyPatch.context() as m:
        m.setattr(export.os, "fsync", failing_fsync)
        with pytest.raises(OSError, match="disk full"):
            save_policy(path, small_config, small_out.state)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert [p.name for p in path.parent.iterdir()] == ["policy"]

    # A path that is not a saved policy is never replaced.
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"notes exists and is not a saved policy"):
        save_policy(other, small_config, small_out.state)
    assert (other / "keep.txt").read_text() == "mine"


def test_predict_acts_like_stable_baselines3(pendulum_out, tmp_path):
    """Policy.predict(obs, deterministic=True) -> (action, None) as numpy, whatever mode
    the policy was loaded with; deterministic=False samples, from the policy's own key
    (advanced per call) or the one given."""
    path = save_policy(tmp_path / "pendulum", PENDULUM, pendulum_out.state)
    policy = load_policy(path)  # loaded stochastic
    obs = np.asarray(pendulum_out.state.obs)
    mode = purejaxppo.make_policy(PENDULUM, pendulum_out.state, deterministic=True)
    action, state = policy.predict(obs, deterministic=True)
    assert isinstance(action, np.ndarray) and state is None
    np.testing.assert_array_equal(action, mode(obs))
    one, _ = policy.predict(obs[0])
    np.testing.assert_array_equal(one, mode(obs[0]))
    first, _ = policy.predict(obs, deterministic=False)
    second, _ = policy.predict(obs, deterministic=False)
    assert not np.array_equal(first, second)  # a fresh draw each call
    key = jax.random.key(3)
    sample = purejaxppo.make_policy(PENDULUM, pendulum_out.state, deterministic=False)
    np.testing.assert_array_equal(
        policy.predict(obs, deterministic=False, key=key)[0], sample(obs, key)
    )
