"""core/schedules.py: the learning-rate and clip-range schedules and the adaptation
rules for the KL-penalty coefficient and the adaptive-KL learning rate, by hand.
(How they act over a whole run is in test_variants.py.)"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from helpers import SMALL

from purejaxppo import Config
from purejaxppo.core.schedules import (
    adapt_beta,
    adapt_lr,
    clip_range,
    next_beta,
    next_lr,
    scheduled_lr,
)

# SMALL: 256 timesteps / 64 per update = 4 updates.
NUM_UPDATES = 4


def test_small_config_has_four_updates():
    assert Config(**SMALL).num_updates == NUM_UPDATES


@pytest.mark.parametrize("step, expected", [(0, 1e-3), (1, 7.5e-4), (3, 2.5e-4)])
def test_linear_lr_by_hand(step, expected):
    # lr * (1 - step / num_updates) = 1e-3 * (1 - step / 4)
    config = Config(**SMALL, lr=1e-3, lr_schedule="linear")
    got = scheduled_lr(config, jnp.int32(step), jnp.float32(123.0))
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_constant_lr_ignores_step_and_carried_value():
    config = Config(**SMALL, lr=1e-3, lr_schedule="constant")
    for step in range(NUM_UPDATES):
        got = scheduled_lr(config, jnp.int32(step), jnp.float32(123.0))
        assert got.dtype == jnp.float32
        np.testing.assert_allclose(got, 1e-3, rtol=1e-7)


def test_adaptive_kl_lr_is_the_carried_value():
    config = Config(**SMALL, lr=1e-3, lr_schedule="adaptive_kl")
    assert float(scheduled_lr(config, jnp.int32(2), jnp.float32(7e-4))) == np.float32(7e-4)


@pytest.mark.parametrize("step, expected", [(0, 0.2), (1, 0.15), (2, 0.1), (3, 0.05), (9, 0.05)])
def test_linear_clip_range_by_hand(step, expected):
    # clip_eps + (final - clip_eps) * min(step / (num_updates - 1), 1)
    # = 0.2 - 0.15 * min(step / 3, 1)
    config = Config(**SMALL, clip_eps=0.2, clip_schedule="linear", clip_eps_final=0.05)
    np.testing.assert_allclose(clip_range(config, jnp.int32(step)), expected, rtol=1e-6)


def test_constant_clip_range():
    config = Config(**SMALL, clip_eps=0.3, clip_eps_final=0.05)  # clip_schedule="constant"
    for step in range(NUM_UPDATES):
        np.testing.assert_allclose(clip_range(config, jnp.int32(step)), 0.3, rtol=1e-7)


def test_next_beta_and_next_lr_adapt_only_when_their_option_is_on():
    kl = jnp.float32(1.0)  # far above desired_kl: beta doubles, the adaptive lr shrinks
    beta, lr = jnp.float32(0.8), jnp.float32(1e-3)
    plain = Config(**SMALL)  # objective="clip", lr_schedule="linear"
    assert float(next_beta(plain, beta, kl)) == np.float32(0.8)
    assert float(next_lr(plain, lr, kl)) == np.float32(1e-3)
    adaptive = Config(
        **SMALL, objective="kl_penalty", lr_schedule="adaptive_kl", lr_min=1e-5, lr_max=1e-2
    )
    np.testing.assert_allclose(next_beta(adaptive, beta, kl), 1.6, rtol=1e-6)
    np.testing.assert_allclose(next_lr(adaptive, lr, kl), 1e-3 / 1.5, rtol=1e-6)


def test_beta_halves_and_doubles_by_the_papers_rule():
    beta, target = jnp.float32(0.8), 0.01
    # kl < target / 1.5 = 0.00667 -> halve; kl > 1.5 * target = 0.015 -> double; else keep.
    np.testing.assert_allclose(adapt_beta(beta, 0.006, target), 0.4)
    np.testing.assert_allclose(adapt_beta(beta, 0.016, target), 1.6)
    np.testing.assert_allclose(adapt_beta(beta, 0.01, target), 0.8)
    np.testing.assert_allclose(adapt_beta(beta, 0.0067, target), 0.8)  # just inside


def test_adaptive_lr_moves_the_right_way_and_stays_in_bounds():
    lr, target = jnp.float32(1e-3), 0.01
    np.testing.assert_allclose(adapt_lr(lr, 0.03, target, 1e-5, 1e-2), 1e-3 / 1.5, rtol=1e-6)
    np.testing.assert_allclose(adapt_lr(lr, 0.004, target, 1e-5, 1e-2), 1.5e-3, rtol=1e-6)
    np.testing.assert_allclose(adapt_lr(lr, 0.01, target, 1e-5, 1e-2), 1e-3, rtol=1e-6)
    np.testing.assert_allclose(adapt_lr(lr, 0.004, target, 1e-5, 1.2e-3), 1.2e-3, rtol=1e-6)
    np.testing.assert_allclose(adapt_lr(lr, 0.03, target, 9e-4, 1e-2), 9e-4, rtol=1e-6)
