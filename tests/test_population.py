"""core/population.py and scale/population.py: population-based training inside one
compiled program: it finds the good learning rate, logs its lineage, is deterministic,
and its pieces behave as documented. (Sharded members: tests_multidevice; through fit
in chunks, with a mid-run resume, and the CLI: test_runner.py and test_cli.py.)"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import SMALL, CallCounter, assert_trees_equal

import purejaxppo
from purejaxppo import PBT, Config, Perturb, Resample
from purejaxppo.core.population import (
    explore_value,
    fitness_of,
    select_parents,
)
from purejaxppo.envs.probes import ActionDependentReward
from purejaxppo.scale import population as population_module

# ActionDependentReward(4): reward 1 for the action the observation points at, one-step
# episodes, so the episode return is the fraction of correct actions (0.25 at chance).
# 40 updates of 8 envs x 8 steps. lr 3e-3 solves it within the budget, 1e-6 never moves.
BASE = Config(
    env=ActionDependentReward(4),
    num_envs=8,
    num_steps=8,
    num_minibatches=2,
    update_epochs=2,
    total_timesteps=8 * 8 * 40,
    hidden_sizes=(16, 16),
    lr_schedule="constant",
)
GOOD, BAD = 3e-3, 1e-6
LRS = [GOOD, GOOD] + [BAD] * 6  # mostly bad
EXPLORE = PBT(every=4, explore={"lr": Perturb(low=1e-7, high=1e-1)})


@pytest.fixture(scope="module")
def population():
    configs = Config.stack([BASE.replace(lr=lr) for lr in LRS])
    keys = jax.random.split(jax.random.key(0), len(LRS))
    counter = CallCounter(population_module.population_train)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(population_module, "population_train", counter)
        population_module._program.cache_clear()
        out = purejaxppo.train_population(configs, keys, EXPLORE)
        again = purejaxppo.train_population(configs, keys, EXPLORE)
    population_module._program.cache_clear()
    plain = purejaxppo.train_many(configs, keys)
    return configs, keys, out, again, plain, counter.calls


def test_pbt_moves_a_mostly_bad_population_to_the_good_rate(population):
    _, _, out, _, plain, traces = population
    assert traces == 1  # the whole population run, PBT steps included, is one program
    final_lr = np.asarray(out.config.lr)
    assert np.sum(final_lr >= GOOD / 3) >= 6, final_lr  # measured: all 8 in [3.7e-3, 5.9e-3]
    last = np.asarray(out.metrics["episode_return"])[:, -5:].mean()
    without = np.asarray(plain.metrics["episode_return"])[:, -5:].mean()
    assert last > without + 0.3, (last, without)  # measured: 0.99 against 0.43


def test_lineage_and_hyperparameters_are_logged_per_update(population):
    _, _, out, _, _, _ = population
    parent = np.asarray(out.metrics["pbt_parent"])
    lr = np.asarray(out.metrics["pbt_lr"])
    n, updates = parent.shape
    assert (n, updates) == (8, 40) and lr.shape == (8, 40)
    np.testing.assert_allclose(lr[:, 0], LRS, rtol=1e-6)  # update 1 trains with the start
    own = np.arange(n)[:, None]
    steps = np.arange(1, updates + 1)
    due = (steps % 4 == 0) & (steps < updates)
    assert np.all(parent[:, ~due] == own)  # no PBT step: everyone is its own parent
    total = 0
    for u in np.flatnonzero(due):
        copied = parent[:, u] != np.arange(n)
        assert copied.sum() <= 2  # fraction 0.25 of 8: at most 2 replaced at each step
        total += copied.sum()
        # A replaced member trains next with its parent's rate times 0.8 or 1.25.
        ratio = lr[copied, u + 1] / lr[parent[copied, u], u]
        assert np.all(np.isclose(ratio, 0.8) | np.isclose(ratio, 1.25)), ratio
        # Everyone else keeps its rate.
        np.testing.assert_array_equal(lr[~copied, u + 1], lr[~copied, u])
    assert total >= 6  # the 6 bad starters were all replaced at some point
    np.testing.assert_allclose(np.asarray(out.config.lr), lr[:, -1], rtol=1e-6)
    assert np.asarray(out.config.gamma).shape == (8,)  # unexplored fields stay as given


def test_a_population_is_deterministic_for_a_fixed_key(population):
    _, _, out, again, _, _ = population
    assert_trees_equal(out, again)


# ---- the pieces, by hand -----------------------------------------------------------------


def test_fitness_ignores_updates_without_episodes_and_ranks_empty_windows_last():
    recent = jnp.array([[1.0, jnp.nan, 3.0], [jnp.nan] * 3, [5.0, 5.0, 5.0]])
    np.testing.assert_array_equal(fitness_of(recent), [2.0, -np.inf, 5.0])


def test_parents_come_from_the_top_and_replace_the_bottom():
    fitness = jnp.array([0.5, 9.0, -1.0, 3.0, 7.0, 0.0, 8.0, 2.0])
    # Sorted: 2 (-1), 5 (0), 0 (0.5), 7 (2), 3 (3), 4 (7), 6 (8), 1 (9): with 2 replaced,
    # members 2 and 5 copy members drawn from {6, 1}.
    for seed in range(5):
        parents = np.asarray(select_parents(jax.random.key(seed), fitness, 2))
        keep = [0, 1, 3, 4, 6, 7]
        np.testing.assert_array_equal(parents[keep], keep)
        assert set(parents[[2, 5]]) <= {6, 1}
    # A donor must be strictly fitter: among equals nobody copies.
    np.testing.assert_array_equal(select_parents(jax.random.key(0), jnp.ones(8), 2), np.arange(8))


def test_explore_perturbs_within_bounds_and_resamples_in_range():
    keys = jax.random.split(jax.random.key(0), 64)
    perturbed = jax.vmap(lambda k: explore_value(Perturb((0.5, 2.0), high=0.3), k, 0.2))(keys)
    assert set(np.round(np.asarray(perturbed, np.float64), 6).tolist()) == {0.1, 0.3}  # not 0.4
    log = jax.vmap(lambda k: explore_value(Resample(1e-5, 1e-2, log=True), k, 0.0))(keys)
    assert np.all((log >= 1e-5) & (log <= 1e-2))
    assert np.sum(log < 3e-4) > 16  # log-uniform: about half below the geometric middle


@pytest.mark.parametrize(
    ("pbt", "message"),
    [
        (dict(explore={"num_envs": Perturb()}), r"'num_envs' is not a traced hyperparameter"),
        (dict(explore={"gamma": Perturb()}), r"Config.gamma must be in \[0, 1\], so a multi"),
        (dict(explore={"lr": Resample(-1.0, 1.0)}), r"bound -1.0 breaks the rule of Config.lr"),
        (dict(explore={"lr": Resample(0.0, 1.0, log=True)}), r"log=True\) needs low > 0"),
        (dict(explore={"lr": Perturb(factors=(0.0, 2.0))}), r"factors=\(0.0, 2.0\) must be"),
        (dict(explore={"lr": 0.5}), r"must be purejaxppo.Perturb"),
        (dict(explore={"lr": "jitter"}), r"PBT.explore\[.lr.\]=.jitter.: write perturb"),
        (dict(fraction=0.75), r"PBT.fraction=0.75: must be in \(0, 0.5\]"),
        (dict(every=0), r"PBT.every=0: must be a positive integer"),
        (dict(fitness="return"), r"PBT.fitness='return': must be one of the per-update"),
    ],
)
def test_bad_pbt_settings_are_refused(pbt, message):
    with pytest.raises((ValueError, TypeError), match=message):
        PBT(**pbt)


def test_bad_populations_are_refused_before_compiling():
    keys = jax.random.split(jax.random.key(0), 3)
    swept = Config.sweep(Config(**SMALL), lr=[1e-3, 2e-3])
    with pytest.raises(ValueError, match=r"2 configs but 3 keys"):
        purejaxppo.train_population(swept, keys, EXPLORE)
    with pytest.raises(ValueError, match=r"at least 2 members, got 1"):
        purejaxppo.train_population(Config(**SMALL), keys[:1], EXPLORE)
    with pytest.raises(ValueError, match=r"Config.target_kl is None"):
        purejaxppo.train_population(Config(**SMALL), keys, PBT(explore={"target_kl": Perturb()}))
