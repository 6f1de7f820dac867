"""Every preset builds, validates and names its source; overrides apply."""

from __future__ import annotations

import numpy as np
import pytest

from purejaxppo import Config, presets
from purejaxppo.envs.brax_adapter import BRAX_ENVS


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_preset_builds_and_validates(name):
    config = Config.preset(name)
    assert config.env == name
    assert presets.PRESETS[name].source
    for field, value in presets.PRESETS[name].fields.items():
        got = getattr(config, field)
        if isinstance(got, np.ndarray):
            np.testing.assert_allclose(got, value, rtol=1e-6)
        else:
            assert got == value, field
    assert config.num_updates >= 1


def test_presets_cover_the_promised_envs():
    classic = {
        "CartPole-v1",
        "Acrobot-v1",
        "MountainCar-v0",
        "MountainCarContinuous-v0",
        "Pendulum-v1",
    }
    minatar = {f"{g}-MinAtar" for g in ("Asterix", "Breakout", "Freeway", "SpaceInvaders")}
    brax = {f"brax/{n}" for n in BRAX_ENVS}
    assert classic | minatar | brax <= set(presets.PRESETS)


def test_preset_overrides_and_errors():
    config = Config.preset("brax/hopper", num_envs=8, lr=1e-3)
    assert config.num_envs == 8 and float(config.lr) == pytest.approx(1e-3)
    assert config.normalize_obs  # the rest of the preset is kept
    with pytest.raises(ValueError, match=r"Config.preset\('brax/hoper'\).*'brax/hopper'"):
        Config.preset("brax/hoper")
    with pytest.raises(TypeError, match=r"unknown Config fields \['learning_rate'\]"):
        Config.preset("CartPole-v1", learning_rate=1e-3)
    with pytest.raises(ValueError, match=r"Config.num_envs=0"):
        Config.preset("CartPole-v1", num_envs=0)


def test_playground_presets_carry_playgrounds_own_ppo_settings():
    """Each DM Control Suite preset is Playground's brax_ppo_config, converted by the
    rules in presets.py (agent steps, U unrolls per env per update)."""
    params = pytest.importorskip("mujoco_playground.config.dm_control_suite_params")
    from mujoco_playground import registry

    names = registry.dm_control_suite.ALL_ENVS
    assert {f"playground/{n}" for n in names} <= set(presets.PRESETS)
    for name in names:
        source = params.brax_ppo_config(name)
        fields = presets.PRESETS[f"playground/{name}"].fields
        unrolls = source.batch_size * source.num_minibatches // source.num_envs
        assert fields["num_steps"] == source.unroll_length * unrolls, name
        assert fields["num_envs"] == source.num_envs
        assert fields["num_minibatches"] == source.num_minibatches
        assert fields["update_epochs"] == source.num_updates_per_batch
        assert fields["total_timesteps"] == source.num_timesteps // source.action_repeat
        assert fields["episode_length"] == source.episode_length // source.action_repeat
        assert (fields["lr"], fields["ent_coef"]) == (source.learning_rate, source.entropy_cost)
        assert (fields["gamma"], fields["reward_scale"]) == (
            source.discounting,
            source.reward_scaling,
        ), name
        assert fields["normalize_obs"] == source.normalize_observations
