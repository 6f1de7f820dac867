"""train_many on one device: seeds beyond memory run in vmapped groups, sized from
the compiled program's memory analysis, with the results of one big vmap (to float
rounding)."""

from __future__ import annotations

import jax
import pytest
from helpers import assert_trees_close

from purejaxppo import Config, train_many
from purejaxppo.scale import memory
from purejaxppo.scale import mesh as many_module

LRS = [1e-3, 2e-3, 3e-3, 4e-3, 5e-3]


@pytest.fixture(scope="module")
def sweep(small_config):
    configs = Config.sweep(small_config, lr=LRS)
    keys = jax.random.split(jax.random.key(3), len(LRS))
    return configs, keys, train_many(configs, keys, group_size=len(LRS))


def test_groups_equal_one_big_vmap(sweep):
    configs, keys, whole = sweep
    # Groups of 2, 2 and 1 (the last padded to 2): one program for every group. Equal to
    # float rounding: XLA:CPU picks kernels by batch size, so a vmap of 2 and one of 5
    # may round the same run's arithmetic differently in the last bit.
    grouped = train_many(configs, keys, group_size=2)
    assert grouped.metrics["episode_return"].shape == whole.metrics["episode_return"].shape
    assert_trees_close(grouped, whole)


def test_the_group_size_comes_from_memory_analysis(sweep, small_config, monkeypatch):
    configs, keys, whole = sweep
    program = jax.jit(jax.vmap(many_module.train, in_axes=(0, 0)))
    needed = memory.program_bytes(program.lower(configs, keys).compile())
    assert needed is not None and needed > 0  # XLA:CPU reports its memory analysis
    # Free memory for two runs at the program's bytes per run, not for five.
    per_run = -(-needed // len(LRS))
    free = int(2 * per_run / memory.USABLE_FRACTION) + 1
    monkeypatch.setattr(many_module, "free_bytes", lambda device=None: free)
    sizes = []
    run_group = many_module._run_group

    def spy(configs, keys, *args):
        sizes.append(keys.shape[0])
        return run_group(configs, keys, *args)

    monkeypatch.setattr(many_module, "_run_group", spy)
    grouped = train_many(configs, keys)
    assert sizes == [2, 2, 2]
    assert_trees_close(grouped, whole)
    # With the host's real free memory the five runs fit in one call.
    monkeypatch.undo()
    sizes.clear()
    monkeypatch.setattr(many_module, "_run_group", spy)
    assert_trees_close(train_many(configs, keys), whole)
    assert sizes == [5]


def test_runs_per_group_rule():
    # All runs when they fit (or a figure is unknown); else the largest group that fits.
    assert memory.runs_per_group(8, 800, 1000) == 8
    assert memory.runs_per_group(8, None, 10) == 8
    assert memory.runs_per_group(8, 10_000, None) == 8
    assert memory.runs_per_group(8, 8000, 2500) == 2  # 1000 per run, 2000 usable
    assert memory.runs_per_group(8, 8000, 1000) == 1  # never below one run
    # Over 4 devices: 8000 bytes per device for 2 runs each -> 4000 per run.
    assert memory.runs_per_group(8, 8000, 5000, devices=4) == 4
    assert memory.runs_per_group(8, 8000, 7500, devices=4) == 4  # 6000 usable
    assert memory.runs_per_group(16, 16_000, 12_500, devices=4) == 8  # 10_000 usable


def test_a_bad_group_size_is_refused_before_compiling(small_config):
    keys = jax.random.split(jax.random.key(0), 2)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match=rf"group_size={bad!r} must be a positive int"):
            train_many(small_config, keys, group_size=bad)


def test_fit_runs_its_seeds_in_groups_when_memory_is_short(small_config, monkeypatch):
    # fit (and the CLI's --num-seeds) size their seed groups the same way: with free
    # memory for one seed of three, each chunk runs the seeds one group at a time.
    from purejaxppo import fit
    from purejaxppo.runner import program as program_module

    options = dict(num_seeds=3, chunk_updates=2, compile_cache=False, progress=False)
    whole = fit(small_config, 0, **options)
    groups = []
    real_group = program_module.seed_groups

    def spy(config, state, n, layout, size):
        groups.append(size)
        return real_group(config, state, n, layout, size)

    monkeypatch.setattr(program_module, "free_bytes", lambda device=None: 1)
    monkeypatch.setattr(program_module, "seed_groups", spy)
    grouped = fit(small_config, 0, **options)
    assert groups == [1]  # one chunk length (2 updates), groups of one seed
    assert_trees_close(grouped.state, whole.state)
    assert_trees_close(grouped.metrics, whole.metrics)
