"""core/learner.py: the minibatch shuffle is a uniformly random permutation, and KL
early stopping takes exactly the steps before the stop."""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import SMALL, assert_trees_close
from jax.flatten_util import ravel_pytree

import purejaxppo
from purejaxppo import Config
from purejaxppo.core.learner import (
    Learner,
    LearnerState,
    make_learner,
    make_optimizer,
    minibatch_update,
    random_permutation,
    update_epochs,
)
from purejaxppo.core.losses import Batch, StepSettings

T = importlib.import_module("purejaxppo.core.train")


@pytest.mark.parametrize("n", [1, 2, 7, 512, 1000, 70_000])
def test_random_permutation_is_a_permutation(n):
    # 70_000 > 2**16 takes the jax.random.permutation fallback.
    perm = np.asarray(random_permutation(jax.random.key(3), n))
    assert perm.dtype == np.int32
    np.testing.assert_array_equal(np.sort(perm), np.arange(n))


def test_random_permutation_is_uniform_over_positions():
    # 4000 draws of a permutation of 8: each element lands in each position with
    # probability 1/8, so each count is ~500 with std sqrt(4000*1/8*7/8) ~ 21.
    keys = jax.random.split(jax.random.key(0), 4000)
    perms = np.asarray(jax.jit(jax.vmap(lambda k: random_permutation(k, 8)))(keys))
    counts = np.zeros((8, 8))
    for position in range(8):
        counts[:, position] = np.bincount(perms[:, position], minlength=8)
    assert np.abs(counts - 500).max() < 6 * 21
    # Different keys give different orders, and the identity is not favoured.
    assert len({tuple(p) for p in perms[:100]}) > 95


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
    batch = Batch(
        obs=obs,
        action=action,
        log_prob=behaviour.log_prob(action),
        value=jnp.zeros(n),
        advantages=jax.random.normal(jax.random.key(3), (n,)),
        returns=jax.random.normal(jax.random.key(4), (n,)),
    )
    settings = StepSettings(jnp.float32(1e-3), jnp.float32(0.2), jnp.float32(1.0), config.ent_coef)
    key = jax.random.key(5)
    stopped = jax.jit(
        lambda p, o: update_epochs(
            make_learner(setup.network, config, p), settings, batch, p, o, key
        )
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
            Learner(setup.network, unravel, make_optimizer(no_stop), no_stop), settings, learner, mb
        )
    # Float tolerance: the hand-made step runs op by op, the update as one fused program.
    # One more or one fewer Adam step at lr 1e-3 moves parameters by ~1e-3.
    assert_trees_close(stopped.params, unravel(learner.flat_params), rtol=1e-4, atol=1e-7)
    assert_trees_close(stopped.opt_state, learner.opt_state, rtol=1e-4, atol=1e-9)
    assert not np.array_equal(ravel_pytree(stopped.params)[0], flat)  # a step was taken
