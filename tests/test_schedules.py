"""core/schedules.py: the learning-rate and clip-range schedules and the adaptation
rules for the KL-penalty coefficient and the adaptive-KL learning rate, by hand.
(How they act over a whole run is in test_variants.py.)"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import SMALL, CallCounter

import purejaxppo
from purejaxppo import Config
from purejaxppo.core.schedules import (
    adapt_beta,
    adapt_lr,
    clip_range,
    next_beta,
    next_lr,
    scheduled_ent_coef,
    scheduled_lr,
    warmup_decay,
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


# ---- warm-up then decay (lr_schedule, ent_schedule) ----------------------------------
# SMALL with total_timesteps=640: 10 updates of 64 transitions.
TEN = dict(SMALL, total_timesteps=640)


@pytest.mark.parametrize(
    "step, expected",
    [
        # warm-up W = 0.2 * 10 = 2 updates, from 1e-4 to 1e-3: 1e-4 + 9e-4 * step / 2
        (0, 1e-4),
        (1, 5.5e-4),
        # then linear from 1e-3 at update 2 to 2e-4 at update 10 (one past the last):
        # 2e-4 + 8e-4 * (1 - (step - 2) / 8)
        (2, 1e-3),
        (6, 6e-4),
        (9, 3e-4),
    ],
)
def test_linear_lr_with_warmup_by_hand(step, expected):
    config = Config(
        **TEN, lr=1e-3, lr_final=2e-4, lr_warmup=0.2, lr_warmup_from=1e-4, lr_schedule="linear"
    )
    np.testing.assert_allclose(scheduled_lr(config, jnp.int32(step), 0.0), expected, rtol=1e-6)


@pytest.mark.parametrize(
    "step, expected",
    [
        # no warm-up; cosine from 1e-3 to 1e-4 over 10 updates:
        # 1e-4 + 9e-4 * 0.5 * (1 + cos(pi * step / 10))
        (0, 1e-3),
        (5, 5.5e-4),  # cos(pi/2) = 0: halfway
        (10, 1e-4),  # the end of the run
    ],
)
def test_cosine_lr_by_hand(step, expected):
    config = Config(**TEN, lr=1e-3, lr_final=1e-4, lr_schedule="cosine")
    np.testing.assert_allclose(scheduled_lr(config, jnp.int32(step), 0.0), expected, rtol=1e-6)


def test_warmup_then_constant_holds_the_peak():
    # gymnax-blines' MountainCar shape: from 5e-3 down to 5e-4 over 30% of the run, then flat.
    config = Config(**TEN, lr=5e-4, lr_warmup=0.3, lr_warmup_from=5e-3, lr_schedule="constant")
    got = [float(scheduled_lr(config, jnp.int32(s), 0.0)) for s in range(10)]
    # W = 3: 5e-3 - 4.5e-3 * step / 3 for step < 3, then 5e-4.
    np.testing.assert_allclose(got, [5e-3, 3.5e-3, 2e-3] + [5e-4] * 7, rtol=1e-6)


def test_entropy_schedule_by_hand():
    # ent warm-up 0.1 * 10 = 1 update from 0, then linear 0.02 -> 0.0 over updates 1..10.
    config = Config(**TEN, ent_coef=0.02, ent_coef_final=0.0, ent_warmup=0.1, ent_schedule="linear")
    got = [float(scheduled_ent_coef(config, jnp.int32(s))) for s in (0, 1, 6)]
    np.testing.assert_allclose(got, [0.0, 0.02, 0.02 * (1 - 5 / 9)], rtol=1e-6)
    constant = Config(**TEN, ent_coef=0.03)  # the default: no schedule
    np.testing.assert_allclose(scheduled_ent_coef(constant, jnp.int32(7)), 0.03, rtol=1e-7)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_warmup_decay_equals_optax_at_integer_warmup(kind):
    import optax

    # W = 0.3 * 10 = 3 updates of warm-up, then 7 of decay.
    start, peak, final, n, w = 1e-4, 1e-3, 1e-5, 10, 3
    decay = (
        optax.linear_schedule(peak, final, n - w)
        if kind == "linear"
        else optax.cosine_decay_schedule(peak, n - w, alpha=final / peak)
    )
    reference = optax.join_schedules([optax.linear_schedule(start, peak, w), decay], [w])
    got = [float(warmup_decay(kind, start, peak, final, 0.3, jnp.int32(s), n)) for s in range(n)]
    np.testing.assert_allclose(got, [float(reference(s)) for s in range(n)], rtol=1e-5)


def test_sweeping_a_schedule_endpoint_traces_once():
    base = Config(**SMALL, lr_schedule="cosine", lr_warmup=0.25, ent_schedule="linear")
    swept = Config.sweep(base, lr_final=[0.0, 1e-4], lr_warmup_from=[0.0, 1e-3])
    keys = jax.random.split(jax.random.key(0), 4)
    counter = CallCounter(purejaxppo.train)  # its own: the session's counts other tests
    run = jax.jit(jax.vmap(counter))
    out = run(swept, keys)
    # The learning rate per update is logged; update 0 is the warm-up's start value.
    np.testing.assert_allclose(out.metrics["lr"][:, 0], [0.0, 1e-3, 0.0, 1e-3], rtol=1e-6)
    again = Config.sweep(base, lr_final=[5e-5, 2e-5], lr_warmup_from=[1e-5, 2e-4])
    jax.block_until_ready(run(again, keys))
    assert counter.calls == 1


def test_adaptive_lr_refuses_a_warmup():
    with pytest.raises(ValueError, match=r"Config.lr_warmup=0.1: lr_schedule='adaptive_kl'"):
        Config(**SMALL, lr_schedule="adaptive_kl", lr_warmup=0.1)
