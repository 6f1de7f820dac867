"""PPO variants in whole runs (core/train.py): adaptive KL penalty, adaptive-KL
learning rate, clip-range schedule, exact-KL metric and advantage-normalisation modes.
The rules by hand are in test_schedules.py, KL early stopping in test_learner.py."""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import SMALL, CallCounter
from jax.flatten_util import ravel_pytree

import purejaxppo
from purejaxppo import Config
from purejaxppo.core.rollout import collect_rollout, rollout_carry
from purejaxppo.core.schedules import adapt_beta, adapt_lr

T = importlib.import_module("purejaxppo.core.train")


# ---- in a run -------------------------------------------------------------------------

# Every variant switched on at once, so one compiled program exercises all of them.
ALL_ON = Config(
    **{**SMALL, "total_timesteps": 64 * 6},
    objective="clip+kl_penalty",
    lr_schedule="adaptive_kl",
    clip_schedule="linear",
    clip_eps_final=0.05,
    desired_kl=0.002,
    lr=1e-3,
    lr_min=2e-4,
    lr_max=2e-3,
    target_kl=0.5,
)


@pytest.fixture(scope="module")
def all_on_out():
    return jax.jit(purejaxppo.train)(ALL_ON, jax.random.key(0))


def test_beta_follows_the_rule_update_by_update(all_on_out):
    m = jax.tree.map(np.asarray, all_on_out.metrics)
    assert m["beta"][0] == pytest.approx(1.0)  # kl_beta_init
    for t in range(len(m["beta"]) - 1):
        expected = adapt_beta(m["beta"][t], m["kl"][t], 0.002)
        np.testing.assert_allclose(m["beta"][t + 1], expected, rtol=1e-6)
    assert len(set(m["beta"].round(6).tolist())) > 1  # the rule did act in this run


def test_adaptive_lr_follows_the_rule_and_bounds(all_on_out):
    m = jax.tree.map(np.asarray, all_on_out.metrics)
    assert m["lr"][0] == pytest.approx(1e-3)
    for t in range(len(m["lr"]) - 1):
        expected = adapt_lr(m["lr"][t], m["kl"][t], 0.002, 2e-4, 2e-3)
        np.testing.assert_allclose(m["lr"][t + 1], expected, rtol=1e-6)
    assert np.all((m["lr"] >= 2e-4 * (1 - 1e-6)) & (m["lr"] <= 2e-3 * (1 + 1e-6)))
    assert len(set(m["lr"].round(9).tolist())) > 1


def test_clip_range_anneals_to_its_final_value_at_the_last_update(all_on_out):
    clip = np.asarray(all_on_out.metrics["clip_eps"])  # 6 updates: 0.2 -> 0.05 in 5 steps
    np.testing.assert_allclose(clip, np.linspace(0.2, 0.05, 6), rtol=1e-6)


def test_kl_metric_is_the_exact_kl_of_the_update():
    """kl = mean KL(pi_before || pi_after) over the update's observations, recomputed
    here from the parameters before and after one update."""
    state0 = purejaxppo.init(ALL_ON, jax.random.key(0))
    state1, metrics = jax.jit(T.update)(ALL_ON, state0)
    setup = T.make_setup(ALL_ON)
    _, rollout_key, _ = jax.random.split(state0.key, 3)
    _, traj, _ = jax.jit(
        lambda s: collect_rollout(setup, ALL_ON, s.params, rollout_carry(s), rollout_key)
    )(state0)
    obs = traj.obs.reshape(-1, traj.obs.shape[-1])
    before = setup.network.apply(state0.params, obs, method="policy")
    after = setup.network.apply(state1.params, obs, method="policy")
    expected = float(jnp.mean(before.kl(after)))
    assert expected > 0
    np.testing.assert_allclose(float(metrics["kl"]), expected, rtol=1e-4)


@pytest.mark.parametrize("mode", ["batch", "off"])
def test_advantage_norm_modes_change_the_result(mode, small_config, small_out):
    out = jax.jit(purejaxppo.train)(small_config.replace(advantage_norm=mode), jax.random.key(0))
    assert not np.allclose(out.metrics["policy_loss"], small_out.metrics["policy_loss"])


def test_every_new_traced_field_sweeps_in_one_trace():
    """One stacked batch of configs, each changing one new traced field, traces once; and
    each value changes the trained parameters against its reference point."""
    base = ALL_ON.replace(normalize_obs=True, normalize_reward=True)
    # In `base` the KL stays below desired_kl / 2, so the adaptive lr rises to lr_max;
    # with a tiny desired_kl it falls to lr_min instead, which lr_min needs to matter.
    falling = {"desired_kl": 1e-7}
    cases = [
        ({}, "clip_eps_final", [0.1, 0.15]),
        ({}, "kl_beta_init", [0.5, 2.0]),
        ({}, "desired_kl", [0.001, 0.02]),
        ({}, "target_kl", [1e-9, 1e-5]),
        (falling, "lr_min", [5e-4, 9e-4]),
        ({}, "lr_max", [1.0e-3, 1.05e-3]),
        ({}, "obs_clip", [2.0, 0.5]),
        ({}, "reward_clip", [5.0, 0.1]),
        ({}, "reward_scale", [0.5, 3.0]),
    ]
    points, checks = [base, base.replace(**falling)], []
    for ref, field, values in cases:
        for v in values:
            checks.append((f"{field}={v}", 1 if ref else 0, len(points)))
            points.append(base.replace(**ref, **{field: v}))
    counter = CallCounter(purejaxppo.train)
    run = jax.jit(jax.vmap(counter, in_axes=(0, None)))
    out = run(Config.stack(points), jax.random.key(0))
    assert counter.calls == 1
    flat = np.asarray(jax.vmap(lambda p: ravel_pytree(p)[0])(out.state.params))
    same = [name for name, ref, i in checks if np.array_equal(flat[i], flat[ref])]
    assert not same
