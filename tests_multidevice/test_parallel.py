"""train_many and train_sharded on 4 fake CPU devices: each equals its one-device
counterpart, parameters stay identical on every device, and a data-parallel
CartPole run learns."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from helpers import assert_close, host

from purejaxppo import Config
from purejaxppo.core.train import train
from purejaxppo.scale.mesh import fingerprints, train_many, train_sharded


@pytest.fixture(scope="module")
def dp_mesh(devices):
    return jax.make_mesh((4,), ("dp",), devices=devices)


@pytest.fixture(scope="module")
def sharded(small_config, dp_mesh):
    return train_sharded(small_config, jax.random.key(0), dp_mesh)


def named_vmap_train(config, key):
    """The per-shard program with the 4 shards as a named vmap axis on one device."""
    run = jax.vmap(
        lambda c, k: train(c, k, axis_name="dp"), in_axes=(None, None), axis_name="dp", axis_size=4
    )
    return jax.jit(run)(config, key)


def test_sharded_equals_the_named_vmap_on_one_device(small_config, sharded):
    local = host(named_vmap_train(small_config, jax.random.key(0)))
    for shard in range(4):
        assert_close(
            sharded.state.params, jax.tree.map(lambda x, s=shard: x[s], local.state.params)
        )
        assert_close(sharded.metrics, jax.tree.map(lambda x, s=shard: x[s], local.metrics))
        assert_close(
            sharded.state.obs_stats, jax.tree.map(lambda x, s=shard: x[s], local.state.obs_stats)
        )
    # Env rows: device d holds envs [2d, 2d + 2), exactly the vmap's shard d.
    np.testing.assert_allclose(
        np.asarray(sharded.state.obs), local.state.obs.reshape(8, -1), rtol=1e-5, atol=1e-6
    )
    assert sharded.state.obs.sharding.spec[0] == "dp"
    assert all(leaf.sharding.is_fully_replicated for leaf in jax.tree.leaves(sharded.state.params))


def test_params_are_identical_on_every_device(sharded):
    prints = fingerprints((sharded.state.params, sharded.state.opt_state))
    assert prints.shape == (4,) and np.all(prints == prints[0])
    for leaf in jax.tree.leaves(sharded.state.params):
        copies = [np.asarray(s.data) for s in leaf.addressable_shards]
        for c in copies[1:]:
            np.testing.assert_array_equal(c, copies[0])


def test_one_and_four_devices_agree_with_one_epoch_and_one_minibatch(small_config, dp_mesh):
    # One full-batch step per update: the shuffle does not matter, so the data-parallel
    # run is the single-device run up to float summation order.
    config = small_config.replace(update_epochs=1, num_minibatches=1)
    four = train_sharded(config, jax.random.key(3), dp_mesh)
    one = jax.jit(train)(config, jax.random.key(3))
    assert_close(four.state.params, one.state.params, rtol=1e-4, atol=1e-6)
    assert_close(four.state.obs_stats, one.state.obs_stats)
    assert_close(four.metrics, one.metrics, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(four.state.obs), np.asarray(one.state.obs), rtol=1e-5)


def test_train_many_over_devices_equals_a_loop_of_train(small_config, devices):
    mesh = jax.make_mesh((4,), ("runs",), devices=devices)
    keys = jax.random.split(jax.random.key(5), 6)  # 6 runs on 4 devices: padded to 8
    configs = Config.sweep(small_config, lr=[1e-3, 2e-3, 3e-3, 4e-3, 5e-3, 6e-3])
    many = host(train_many(configs, keys, mesh=mesh))
    one_device = host(train_many(configs, keys))
    assert many.metrics["value_loss"].shape == (6, 4)
    train_jit = jax.jit(train)
    for i, config in enumerate(configs.unstack()):
        single = train_jit(config, keys[i])
        assert_close(jax.tree.map(lambda x, i=i: x[i], many.state.params), single.state.params)
        assert_close(jax.tree.map(lambda x, i=i: x[i], many.metrics), single.metrics)
    assert_close(many.metrics, one_device.metrics)


def test_sharded_results_index_like_arrays(small_config, devices, sharded):
    # jax.make_mesh's default (Explicit) axes put the sharding in the arrays' type,
    # where plain indexing raises a ShardingTypeError; results must index anyway, and
    # give what indexing the host copy gives.
    mesh = jax.make_mesh((4,), ("runs",), devices=devices)
    keys = jax.random.split(jax.random.key(11), 4)  # one run per device: stays sharded
    many = train_many(small_config, keys, mesh=mesh)
    assert many.metrics["episode_return"].sharding.spec[0] == "runs"
    on_host = host(many)
    for i in (0, 3):
        run = jax.tree.map(lambda x, i=i: x[i], many)  # state (typed keys included), metrics
        assert_close(run, jax.tree.map(lambda x, i=i: x[i], on_host), rtol=0, atol=0)
    returns = many.metrics["episode_return"]
    np.testing.assert_array_equal(returns[1:3, -1], on_host.metrics["episode_return"][1:3, -1])
    assert float(many.metrics["value_loss"][2].mean()) == float(
        on_host.metrics["value_loss"][2].mean()
    )
    # train_sharded: env rows sharded over "dp", replicated fields and the run's key.
    assert sharded.state.obs.sharding.spec[0] == "dp"
    np.testing.assert_array_equal(sharded.state.obs[5], np.asarray(sharded.state.obs)[5])
    np.testing.assert_array_equal(sharded.state.obs[2:6], np.asarray(sharded.state.obs)[2:6])
    assert sharded.metrics["value_loss"][-1].shape == ()
    assert jax.random.key_data(sharded.state.key).shape == (2,)  # threefry


def test_two_dimensional_mesh_equals_a_loop_of_data_parallel_runs(small_config, devices):
    mesh = jax.make_mesh((2, 2), ("runs", "dp"), devices=devices)
    keys = jax.random.split(jax.random.key(7), 2)
    configs = Config.sweep(small_config, lr=[1e-3, 3e-3])
    both = host(train_sharded(configs, keys, mesh, runs_axis="runs"))
    pair = jax.make_mesh((2,), ("dp",), devices=devices[:2])
    for i, config in enumerate(configs.unstack()):
        single = train_sharded(config, keys[i], pair)
        assert_close(jax.tree.map(lambda x, i=i: x[i], both.state.params), single.state.params)
        assert_close(jax.tree.map(lambda x, i=i: x[i], both.metrics), single.metrics)
        np.testing.assert_allclose(both.state.obs[i], np.asarray(single.state.obs), rtol=1e-5)


def test_bad_layouts_are_refused_before_compiling(small_config, dp_mesh, devices):
    with pytest.raises(ValueError, match=r"num_envs=6 must be divisible by the 4 devices"):
        train_sharded(small_config.replace(num_envs=6), jax.random.key(0), dp_mesh)
    # 128 rows split in 64 minibatches is a valid Config, but a device holds 32 rows.
    with pytest.raises(ValueError, match=r"num_minibatches=64 must divide each device's batch"):
        train_sharded(small_config.replace(num_minibatches=64), jax.random.key(0), dp_mesh)
    with pytest.raises(ValueError, match=r"data_axis='data' is not an axis of the mesh"):
        train_sharded(small_config, jax.random.key(0), dp_mesh, data_axis="data")
    runs = jax.make_mesh((4,), ("runs",), devices=devices)
    with pytest.raises(ValueError, match="3 configs but 2 keys"):
        train_many(
            Config.sweep(small_config, lr=[1e-3, 2e-3, 3e-3]),
            jax.random.split(jax.random.key(0), 2),
            mesh=runs,
        )


@pytest.mark.slow  # multi_device.ipynb's committed full-budget run learns data-parallel
def test_data_parallel_cartpole_learns(devices):
    # Default CartPole settings (4 envs: one per device), 4 seeds vmapped inside
    # shard_map: the same threshold as the single-device learning test.
    mesh = jax.make_mesh((1, 4), ("runs", "dp"), devices=devices)
    out = train_sharded(Config(), jax.random.split(jax.random.key(0), 4), mesh, runs_axis="runs")
    returns = np.asarray(out.metrics["episode_return"])
    final = np.nanmean(returns[:, -10:], axis=1)
    assert np.all(np.isfinite(final)) and final.mean() >= 475, final
    assert np.nanmean(returns[:, :5]) < 100


def test_fit_with_a_mesh_is_train_sharded_and_resumes_exactly(small_config, dp_mesh, tmp_path):
    from purejaxppo import fit
    from purejaxppo.io.checkpoints import Checkpointer

    config = small_config.replace(total_timesteps=8 * 16 * 6)
    reference = train_sharded(config, jax.random.key(0), dp_mesh)
    options = dict(mesh=dp_mesh, chunk_updates=2, checkpoint_every=2, compile_cache=False)
    out = tmp_path / "run"
    full = fit(config, 0, out=out, **options)
    assert_close(full.state.params, reference.state.params, rtol=0, atol=0)  # bitwise
    np.testing.assert_array_equal(
        full.metrics["value_loss"], np.asarray(reference.metrics["value_loss"])
    )
    assert full.state.obs.sharding.spec[0] == "dp"
    # Checkpoints hold the gathered env rows; a resume puts them back on the devices.
    assert Checkpointer(out / "checkpoints", create=False).steps() == [2, 4, 6]
    resumed = fit(config, 0, resume=out, resume_step=2, **options)
    assert_close(resumed.state, full.state, rtol=0, atol=0)
    with pytest.raises(ValueError, match="one data-parallel run takes one config and one seed"):
        fit(config, 0, num_seeds=2, mesh=dp_mesh, compile_cache=False)


def test_repeated_calls_reuse_the_compiled_program(small_config, dp_mesh):
    from purejaxppo.scale import mesh as parallel

    # The first call may or may not find the program (another test in this worker may
    # have built it); the second call must.
    train_sharded(small_config, jax.random.key(9), dp_mesh)
    before = parallel._sharded_program.cache_info()
    train_sharded(small_config, jax.random.key(10), dp_mesh)
    after = parallel._sharded_program.cache_info()
    assert after.hits == before.hits + 1 and after.misses == before.misses


def test_dict_observations_and_masks_shard_like_any_observation(small_config, dp_mesh, devices):
    """Dict observations (per-key statistics merged over the shards) and masked actions:
    data-parallel over 4 devices equals the named vmap, and train_many over devices
    equals a loop of train."""
    config = small_config.replace(env="probe/MaskedActions", normalize_obs=True)
    sharded = host(train_sharded(config, jax.random.key(1), dp_mesh))
    local = host(named_vmap_train(config, jax.random.key(1)))
    first = jax.tree.map(lambda x: x[0], local)
    assert set(sharded.state.obs_stats) == {"observation"}
    assert_close(sharded.state.params, first.state.params)
    assert_close(sharded.state.obs_stats, first.state.obs_stats)
    assert_close(sharded.metrics, first.metrics)
    mask = np.asarray(sharded.state.obs["action_mask"])
    np.testing.assert_array_equal(mask, local.state.obs["action_mask"].reshape(mask.shape))
    runs = jax.make_mesh((4,), ("runs",), devices=devices)
    keys = jax.random.split(jax.random.key(2), 4)
    many = host(train_many(Config.sweep(config, lr=[1e-3, 2e-3, 3e-3, 4e-3]), keys, mesh=runs))
    single = jax.jit(train)(config.replace(lr=3e-3), keys[2])
    assert_close(jax.tree.map(lambda x: x[2], many.metrics), single.metrics)


def test_recurrent_carry_shards_with_its_env_rows(small_config, dp_mesh):
    """A GRU's hidden state is one row per env: data-parallel over 4 devices it is
    sharded like the observations, and the run equals the named vmap."""
    config = small_config.replace(recurrent="gru", recurrent_size=8, num_minibatches=2)
    sharded = train_sharded(config, jax.random.key(3), dp_mesh)
    carry = sharded.state.carry
    assert all(leaf.sharding.spec[0] == "dp" for leaf in jax.tree.leaves(carry))
    local = host(named_vmap_train(config, jax.random.key(3)))
    first = jax.tree.map(lambda x: x[0], local)
    assert_close(host(sharded.state.params), first.state.params)
    assert_close(host(sharded.metrics), first.metrics)
    leaves = zip(jax.tree.leaves(host(carry)), jax.tree.leaves(local.state.carry), strict=True)
    for got, rows in leaves:
        np.testing.assert_allclose(got, rows.reshape(got.shape), rtol=1e-5, atol=1e-6)


def test_a_population_sharded_over_devices_equals_one_device(small_config, devices):
    """PBT with its 8 members 2 per device: the fitness and the donors' states are
    all-gathered, so every exploit/explore decision, and the result, equals one device's."""
    from purejaxppo import PBT, Perturb, Resample, train_population

    mesh = jax.make_mesh((4,), ("runs",), devices=devices)
    configs = Config.sweep(
        small_config.replace(total_timesteps=8 * 16 * 6),
        lr=[1e-4, 1e-3],
        ent_coef=[0, 0.01, 0.02, 0.03],
    )
    keys = jax.random.split(jax.random.key(3), 8)
    pbt = PBT(
        every=2,
        fitness="explained_variance",  # never NaN, so the ranking is not all ties
        explore={"lr": Perturb(low=1e-5, high=1e-2), "ent_coef": Resample(0.0, 0.05)},
    )
    sharded = host(train_population(configs, keys, pbt, mesh=mesh))
    one = host(train_population(configs, keys, pbt))
    assert (sharded.metrics["pbt_parent"] != np.arange(8)[:, None]).any()  # PBT did copy
    assert_close(sharded, one)
    assert sharded.metrics["pbt_lr"].shape == (8, 6)
