"""Config validation, canonicalisation, sweeps and derived sizes (no training)."""

from __future__ import annotations

import dataclasses
import pathlib
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

from purejaxppo import Config, train
from purejaxppo.config import (
    OPTIONAL_TRACED,
    STATIC_FIELDS,
    TRACED_FIELDS,
    attribute_docs,
    markdown_table,
)
from purejaxppo.core.setup import make_setup


def raises(exc, *fragments):
    """pytest.raises(exc) whose message must contain every fragment literally."""
    return pytest.raises(exc, match="(?s)" + "".join(f"(?=.*{re.escape(f)})" for f in fragments))


# ---- static fields ------------------------------------------------------------------


def test_minibatches_must_divide_batch():
    # 4 * 128 = 512 is not divisible by 3
    with raises(ValueError, "Config.num_minibatches=3", "divide", "512"):
        Config(num_minibatches=3)


def test_total_timesteps_at_least_one_batch():
    with raises(ValueError, "Config.total_timesteps=100", "at least one batch", "512"):
        Config(total_timesteps=100)


@pytest.mark.parametrize("field", ["num_envs", "num_steps", "num_minibatches", "update_epochs"])
@pytest.mark.parametrize("value", [0, -1])
def test_sizes_must_be_positive(field, value):
    with raises(ValueError, f"Config.{field}={value}", "positive"):
        Config(**{field: value})


@pytest.mark.parametrize("field", ["num_envs", "num_steps", "update_epochs"])
def test_sizes_must_be_integers(field):
    with raises(ValueError, f"Config.{field}=2.5"):
        Config(**{field: 2.5})


@pytest.mark.parametrize("hidden", [(64, 0), (-1,), (64.0, 64)])
def test_hidden_sizes_must_be_positive_ints(hidden):
    with raises(ValueError, f"Config.hidden_sizes={hidden!r}", "positive integers"):
        Config(hidden_sizes=hidden)


def test_hidden_sizes_list_becomes_tuple():
    assert Config(hidden_sizes=[32, 32]).hidden_sizes == (32, 32)


def test_unknown_env_lists_close_matches():
    with raises(ValueError, "Config.env='CartPol-v1'", "'CartPole-v1'"):
        Config(env="CartPol-v1")


def test_unknown_env_without_close_match():
    with raises(ValueError, "Config.env='NoSuchThing'", "not a registered"):
        Config(env="NoSuchThing")


def test_env_object_without_gymnax_api_rejected():
    with raises(TypeError, "Config.env=", "gymnax"):
        Config(env=object())


def test_unknown_activation():
    with raises(ValueError, "Config.activation='tanhh'", "'tanh'", "relu"):
        Config(activation="tanhh")


def test_bool_switch_must_be_bool():
    with raises(TypeError, "Config.clip_value_loss='yes'"):
        Config(clip_value_loss="yes")


# ---- traced fields ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("lr", 0.0, "> 0"),
        ("lr", -1e-3, "> 0"),
        ("gamma", 1.5, "[0, 1]"),
        ("gamma", -0.1, "[0, 1]"),
        ("gae_lambda", 1.01, "[0, 1]"),
        ("gae_lambda", -0.5, "[0, 1]"),
        ("clip_eps", 0.0, "> 0"),
        ("clip_eps", -0.2, "> 0"),
        ("vf_clip_eps", 0.0, "> 0"),
        ("max_grad_norm", 0.0, "> 0"),
        ("adam_eps", 0.0, "> 0"),
        ("vf_coef", -1.0, ">= 0"),
        ("ent_coef", float("nan"), "finite"),
        ("obs_clip", 0.0, "> 0"),
        ("reward_clip", -1.0, "> 0"),
        ("reward_scale", 0.0, "> 0"),
        ("reward_scale", float("inf"), "finite"),
    ],
)
def test_traced_rules(field, value, rule):
    with raises(ValueError, f"Config.{field}={value!r}", rule):
        Config(**{field: value})


@pytest.mark.parametrize(("field", "value"), [("gamma", 0.0), ("gamma", 1.0), ("gae_lambda", 0.0)])
def test_traced_bounds_are_inclusive(field, value):
    assert float(getattr(Config(**{field: value}), field)) == value


def test_traced_field_given_a_list_points_to_sweep():
    with raises(TypeError, "Config.lr=[0.001, 0.0003]", "Config.sweep"):
        Config(lr=[1e-3, 3e-4])


def test_traced_field_given_an_array_outside_sweep():
    with pytest.raises(TypeError, match=re.escape("Config.lr=")) as err:
        Config(lr=np.array([1e-3, 3e-4]))
    assert "Config.sweep" in str(err.value)


def test_sweep_accepts_jax_arrays():
    import jax.numpy as jnp

    swept = Config.sweep(Config(), lr=jnp.array([1e-3, 3e-4]))
    np.testing.assert_allclose(swept.lr, [1e-3, 3e-4])


def test_traced_field_given_none_or_string():
    with raises(TypeError, "Config.gamma=None"):
        Config(gamma=None)
    with raises(TypeError, "Config.lr='fast'"):
        Config(lr="fast")


def test_traced_fields_are_float32_arrays():
    c = Config(lr=1e-3, target_kl=0.02)
    for name in TRACED_FIELDS:
        value = getattr(c, name)
        assert isinstance(value, np.ndarray), name
        assert value.dtype == np.float32 and value.shape == (), name
    np.testing.assert_allclose(c.lr, 1e-3)


# ---- total_timesteps ----------------------------------------------------------------


def test_float_total_timesteps_accepted_as_int():
    c = Config(total_timesteps=5e5)
    assert c.total_timesteps == 500_000
    assert type(c.total_timesteps) is int


def test_fractional_total_timesteps_rejected():
    with raises(ValueError, "Config.total_timesteps=550000.5", "whole number"):
        Config(total_timesteps=5.5e5 + 0.5)


def test_non_positive_total_timesteps_rejected():
    with raises(ValueError, "Config.total_timesteps=0"):
        Config(total_timesteps=0)


# ---- derived sizes, replace ---------------------------------------------------------


def test_derived_sizes_defaults():
    c = Config()
    assert c.batch_size == 4 * 128 == 512
    assert c.minibatch_size == 512 // 4 == 128
    assert c.num_updates == 500_000 // 512 == 976  # rounded down
    assert c.batch_shape == ()


def test_derived_sizes_custom():
    c = Config(num_envs=8, num_steps=32, num_minibatches=8, total_timesteps=10_000)
    assert (c.batch_size, c.minibatch_size, c.num_updates) == (256, 32, 39)  # 10000 // 256


def test_replace_validates_and_copies():
    c = Config()
    d = c.replace(lr=1e-3, num_envs=8)
    assert d.num_envs == 8 and float(d.lr) == pytest.approx(1e-3)
    assert c.num_envs == 4 and float(c.lr) == pytest.approx(2.5e-4)  # original unchanged
    with raises(ValueError, "Config.gamma=2.0"):
        c.replace(gamma=2.0)
    with raises(ValueError, "Config.num_minibatches=3"):
        c.replace(num_minibatches=3)


def test_frozen():
    with pytest.raises(AttributeError):
        Config().num_envs = 8


# ---- sweep / stack / unstack --------------------------------------------------------


def test_sweep_grid_order_and_shape():
    base = Config(gamma=0.9)
    s = Config.sweep(base, lr=[1e-3, 3e-4], ent_coef=[0.0, 0.01, 0.1])
    assert s.batch_shape == (6,)
    # itertools.product order: the last name varies fastest.
    np.testing.assert_allclose(s.lr, [1e-3, 1e-3, 1e-3, 3e-4, 3e-4, 3e-4])
    np.testing.assert_allclose(s.ent_coef, [0.0, 0.01, 0.1, 0.0, 0.01, 0.1])
    # Every other traced field is broadcast from the base (target_kl=None stays off).
    assert s.target_kl is None
    for name in TRACED_FIELDS:
        if name != "target_kl":
            assert np.shape(getattr(s, name)) == (6,), name
    np.testing.assert_allclose(s.gamma, np.full(6, 0.9))
    assert s.num_envs == base.num_envs and s.env == base.env


def test_sweep_rejects_static_field():
    with raises(ValueError, "'num_envs'", "not a traced hyperparameter"):
        Config.sweep(Config(), num_envs=[4, 8])


def test_sweep_validates_values():
    with raises(ValueError, "Config.lr=-1"):
        Config.sweep(Config(), lr=[1e-3, -1])


def test_sweep_needs_a_list():
    with raises(TypeError, "lr=0.001", "list"):
        Config.sweep(Config(), lr=1e-3)
    with raises(ValueError, "lr=[]"):
        Config.sweep(Config(), lr=[])


def test_stack_unstack_round_trip():
    configs = [Config(lr=1e-3), Config(lr=2e-3, gamma=0.9)]
    stacked = Config.stack(configs)
    assert stacked.batch_shape == (2,)
    back = stacked.unstack()
    assert len(back) == 2
    for orig, new in zip(configs, back, strict=True):
        for name in TRACED_FIELDS:
            np.testing.assert_array_equal(getattr(orig, name), getattr(new, name))
        assert new.num_envs == orig.num_envs
    assert Config().unstack()[0].batch_shape == ()


def test_stack_rejects_different_static_fields():
    with raises(ValueError, "num_envs", "static"):
        Config.stack([Config(), Config(num_envs=8)])
    with raises(ValueError, "empty"):
        Config.stack([])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"continuous_dist": "beta"}, "Config.continuous_dist='beta': must be one of"),
        ({"brax_backend": "warp"}, "Config.brax_backend='warp': must be one of"),
        ({"episode_length": 0}, "Config.episode_length=0: must be a positive integer or None"),
        ({"action_repeat": 0}, "Config.action_repeat=0: must be a positive integer"),
        ({"critic_hidden_sizes": (0,)}, "Config.critic_hidden_sizes=(0,): must be a tuple"),
        (
            {"critic_hidden_sizes": (8,), "shared_torso": True},
            "Config.critic_hidden_sizes=(8,): needs separate torsos",
        ),
        ({"normalize_obs": 1}, "Config.normalize_obs=1: must be True or False"),
    ],
)
def test_static_rules_of_env_and_policy_fields(changes, message):
    with pytest.raises((ValueError, TypeError)) as info:
        Config(**changes)
    assert message in str(info.value)


def test_episode_length_overrides_the_gymnax_time_limit():
    import importlib

    setup = importlib.import_module("purejaxppo.core.setup").make_setup(Config(episode_length=50))
    assert setup.env_params.max_steps_in_episode == 50


def test_tanh_gaussian_needs_finite_bounds():
    from gymnax.environments import spaces

    from purejaxppo.envs.probes import ContinuousTargetAction

    class Unbounded(ContinuousTargetAction):
        def action_space(self, params=None):
            return spaces.Box(-float("inf"), float("inf"), (1,))

    # The Config only names the env; the bounds are checked where the env is built, in
    # make_setup, which runs while train is traced (before anything is compiled).
    config = Config(env=Unbounded(), continuous_dist="tanh_gaussian")
    with pytest.raises(ValueError, match=r"Config.continuous_dist='tanh_gaussian'.*finite"):
        make_setup(config)
    with pytest.raises(ValueError, match=r"Config.continuous_dist='tanh_gaussian'.*finite"):
        jax.jit(train).lower(config, jax.random.key(0))


def test_adaptive_lr_bounds_and_optional_target_kl_errors():
    with pytest.raises(ValueError, match=r"Config.lr_min=0.1: must be <= lr_max=0.01"):
        Config(lr_min=0.1)
    with pytest.raises(ValueError, match=r"Config.lr=0.5: with lr_schedule='adaptive_kl'"):
        Config(lr=0.5, lr_schedule="adaptive_kl")
    Config(lr=0.5)  # the bounds only apply to the adaptive schedule
    with pytest.raises(ValueError, match=r"target_kl is None in one of configs 0 and 1"):
        Config.sweep(Config(), target_kl=[None, 0.1])
    with pytest.raises(TypeError, match=r"Config.target_kl=.*a batch of shape \(2,\)"):
        Config.sweep(Config(), lr=[1e-3, 2e-3]).replace(target_kl=0.1)
    with pytest.raises(ValueError, match=r"Config.objective='clipp'.*did you mean 'clip'"):
        Config(objective="clipp")


def test_unsupported_action_space_raised_by_setup_before_compiling():
    from gymnax.environments import spaces

    from purejaxppo.envs.probes import ContinuousTargetAction

    class Matrix(ContinuousTargetAction):
        def action_space(self, params=None):
            return spaces.Box(-1.0, 1.0, (2, 2))

    config = Config(env=Matrix())  # building the config does not look at the env's spaces
    with raises(ValueError, "Config.env=", "Box action spaces must be 1-D", "(2, 2)"):
        jax.jit(train).lower(config, jax.random.key(0))


# ---- per-field metadata -----------------------------------------------------------------


def test_field_lists_are_derived_from_the_metadata():
    fields = dataclasses.fields(Config)
    assert {f.metadata["kind"] for f in fields} == {"static", "traced"}
    assert TRACED_FIELDS == tuple(f.name for f in fields if f.metadata["kind"] == "traced")
    assert STATIC_FIELDS == tuple(f.name for f in fields if f.metadata["kind"] == "static")
    assert OPTIONAL_TRACED == ("target_kl",)
    assert {"lr", "gamma", "desired_kl", "target_kl"} <= set(TRACED_FIELDS)
    assert {"env", "num_envs", "hidden_sizes", "lr_schedule"} <= set(STATIC_FIELDS)
    # The pytree's leaves are exactly the traced fields, in that order.
    c = Config(lr=1e-3, target_kl=0.02)
    leaves = jax.tree.leaves(c)
    assert len(leaves) == len(TRACED_FIELDS)
    for name, leaf in zip(TRACED_FIELDS, leaves, strict=True):
        assert leaf is getattr(c, name)


def test_every_field_has_a_kind_a_rule_and_a_doc():
    docs = attribute_docs(Config)
    for f in dataclasses.fields(Config):
        assert f.metadata["kind"] in ("static", "traced"), f.name
        assert docs.get(f.name, "").strip(), f"Config.{f.name} has no docstring"
        if f.metadata["kind"] == "traced":
            assert len(f.metadata["rules"]) == 1, f.name
        elif f.name != "env":  # env is checked against the registries (a cross-field check)
            assert f.metadata["rules"], f"Config.{f.name} declares no rule"


def test_readme_config_table_is_generated_from_the_fields():
    readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    start = readme.index("<!-- config-table:start")
    start = readme.index("\n", start) + 1
    end = readme.index("<!-- config-table:end -->")
    assert readme[start:end] == markdown_table(), (
        "README config table is stale: regenerate it with purejaxppo.config.markdown_table()"
    )
    assert markdown_table().count("\n") == len(dataclasses.fields(Config)) + 2


# ---- renamed fields --------------------------------------------------------------------

RENAMED = "Config.kl_target was renamed desired_kl"


@pytest.mark.parametrize(
    "build",
    [
        lambda: Config(kl_target=0.01),
        lambda: Config.from_dict({"kl_target": 0.01}),
        lambda: Config().replace(kl_target=0.01),
        lambda: Config.preset("CartPole-v1", kl_target=0.01),
        lambda: Config.sweep(Config(), kl_target=[0.01, 0.02]),
    ],
    ids=["init", "from_dict", "replace", "preset", "sweep"],
)
def test_old_name_kl_target_names_the_new_one(build):
    with raises(TypeError, RENAMED, "target_kl is the early-stopping threshold"):
        build()
    with raises(ValueError, RENAMED):  # also a ValueError, like an unknown config key
        build()


def test_new_name_desired_kl_works():
    assert float(Config(desired_kl=0.02).desired_kl) == pytest.approx(0.02)
    assert Config.from_dict(Config(desired_kl=0.02).to_dict()).to_dict()["desired_kl"] == 0.02


# ---- building a Config constructs no env -----------------------------------------------


def test_building_a_config_constructs_no_env(monkeypatch):
    import gymnax

    import purejaxppo.envs
    from purejaxppo.envs import brax_adapter, gymnax_adapter

    def built(*args, **kwargs):
        raise AssertionError("building a Config constructed an env")

    # Every way to an env instance (some of them cached, so patch the entry points).
    monkeypatch.setattr(purejaxppo.envs, "resolve_env", built, raising=False)
    monkeypatch.setattr(gymnax_adapter, "resolve_env", built)
    monkeypatch.setattr(gymnax_adapter, "make_brax_env", built)
    monkeypatch.setattr(brax_adapter, "make_brax_env", built)
    monkeypatch.setattr(brax_adapter, "BraxEnv", built)
    monkeypatch.setattr(gymnax, "make", built)
    for env in ("Pendulum-v1", "Breakout-MinAtar", "brax/hopper", "brax/swimmer"):
        Config(env=env).replace(num_envs=8)
    Config.preset("brax/ant")
    Config.sweep(Config(env="brax/hopper"), lr=[1e-3, 3e-4])
    with raises(ValueError, "Config.env='brax/hoper'", "brax/hopper"):
        Config(env="brax/hoper")  # unknown ids are still refused at once


def test_brax_config_does_not_import_brax_or_gymnax():
    code = (
        "import sys\n"
        "from purejaxppo import Config\n"
        "c = Config.preset('brax/hopper', num_envs=8)\n"
        "c = Config(env='brax/hopper')\n"
        "loaded = [m for m in ('brax', 'mujoco', 'gymnax') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
