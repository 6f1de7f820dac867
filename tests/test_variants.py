"""PPO variants: adaptive KL penalty, KL early stopping, adaptive-KL learning rate,
clip-range schedule and advantage-normalisation modes."""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import SMALL, CallCounter, assert_trees_close
from jax.flatten_util import ravel_pytree

import purejaxppo
from purejaxppo import Config
from purejaxppo.core.learner import (
    LearnerState,
    adapt_beta,
    adapt_lr,
    make_optimizer,
    minibatch_update,
    random_permutation,
    update_epochs,
)
from purejaxppo.core.losses import StepSettings
from purejaxppo.core.rollout import collect_rollout, rollout_carry

T = importlib.import_module("purejaxppo.core.train")


# ---- the rules, as functions --------------------------------------------------------


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


@pytest.fixture(scope="module")
def early_stop_runs():
    tiny = Config(**SMALL, target_kl=1e-9)
    off = Config(**SMALL)
    run = jax.jit(purejaxppo.train)
    return run(tiny, jax.random.key(0)), run(off, jax.random.key(0))


def test_early_stopping_takes_fewer_steps_and_none_takes_all(early_stop_runs):
    tiny, off = (jax.tree.map(np.asarray, o.metrics) for o in early_stop_runs)
    full = SMALL["update_epochs"] * SMALL["num_minibatches"]
    np.testing.assert_array_equal(off["updates_done"], full)
    assert not off["early_stopped"].any()
    # The first minibatch of an update sees KL = 0 (the behaviour policy itself), so its
    # step is taken; the next one exceeds 1.5e-9 and stops the update.
    np.testing.assert_array_equal(tiny["updates_done"], 1)
    assert tiny["early_stopped"].all()


def test_an_early_stopped_update_equals_the_steps_before_the_stop():
    """Built by hand: the first minibatch step of the first epoch, from the same batch,
    permutation and optimizer state, equals the whole early-stopped update."""
    config = Config(**SMALL, target_kl=1e-9)
    state = purejaxppo.init(config, jax.random.key(0))
    setup = T.make_setup(config)
    n = config.batch_size
    obs = jax.random.normal(jax.random.key(1), (n, 4))
    action = jax.random.bernoulli(jax.random.key(2), 0.5, (n,)).astype(jnp.int32)
    # The behaviour policy is the initial policy itself, so the first minibatch's KL is
    # exactly 0 and its step is taken; the next one's KL exceeds 1.5e-9 and stops.
    behaviour = setup.network.apply(state.params, obs, method="policy")
    batch = purejaxppo.losses.Batch(
        obs=obs,
        action=action,
        log_prob=behaviour.log_prob(action),
        value=jnp.zeros(n),
        advantages=jax.random.normal(jax.random.key(3), (n,)),
        returns=jax.random.normal(jax.random.key(4), (n,)),
    )
    settings = StepSettings(jnp.float32(1e-3), jnp.float32(0.2), jnp.float32(1.0))
    key = jax.random.key(5)
    stopped = jax.jit(
        lambda p, o: update_epochs(setup.network, config, settings, batch, p, o, key)
    )(state.params, state.opt_state)
    assert int(stopped.steps_done) == 1 and bool(stopped.stopped)

    flat, unravel = ravel_pytree(state.params)
    perm = random_permutation(jax.random.split(key, config.update_epochs)[0], n)
    no_stop = config.replace(target_kl=None)
    learner = LearnerState(flat, state.opt_state, jnp.zeros((), bool), jnp.zeros((), jnp.int32))
    for i in range(int(stopped.steps_done)):
        idx = perm[i * config.minibatch_size : (i + 1) * config.minibatch_size]
        mb = jax.tree.map(lambda x, idx=idx: x[idx], batch)
        learner, _ = minibatch_update(
            setup.network, unravel, make_optimizer(no_stop), no_stop, settings, learner, mb
        )
    # Float tolerance: the hand-made step runs op by op, the update as one fused program.
    # One more or one fewer Adam step at lr 1e-3 moves parameters by ~1e-3.
    assert_trees_close(stopped.params, unravel(learner.flat_params), rtol=1e-4, atol=1e-7)
    assert_trees_close(stopped.opt_state, learner.opt_state, rtol=1e-4, atol=1e-9)
    assert not np.array_equal(ravel_pytree(stopped.params)[0], flat)  # a step was taken


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
