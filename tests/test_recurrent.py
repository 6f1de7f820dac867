"""Recurrent PPO (Config.recurrent): carry resets at episode ends, the truncation
bootstrap from the pre-reset carry, sequence minibatches equal to a step-by-step
recomputation, memory on a cue-recall probe, acting with a carry (make_policy,
evaluate, export, the episode loop of rendering), and the guarantees of the
feed-forward trainer (vmap and sweeps, fit in chunks, the non-finite guard)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_trees_close, assert_trees_equal

import purejaxppo
from purejaxppo import Config, NonFiniteError, evaluate, fit, load_policy, make_policy, save_policy
from purejaxppo.acting.render import run_episode
from purejaxppo.core.learner import sequence_minibatches
from purejaxppo.core.losses import StepSettings, ppo_loss
from purejaxppo.core.rollout import collect_rollout, rollout_carry, step_records
from purejaxppo.core.setup import make_setup
from purejaxppo.core.train import init, training_batch
from purejaxppo.envs.probes import MemoryCue
from purejaxppo.nn.cells import GRU, LSTM
from purejaxppo.nn.recurrent import initial_carry, reset_carry, unroll
from purejaxppo.scale.mesh import data_parallel_check

# CartPole cut at 12 steps: a random policy's episodes end both ways in one rollout.
ROLLOUT = dict(
    env="CartPole-v1",
    episode_length=12,
    recurrent_size=8,
    hidden_sizes=(16,),
    num_envs=4,
    num_steps=48,
    num_minibatches=2,
    total_timesteps=192,
)
# The memory probe: a cue at the first step, recalled for the reward at the last.
MEMORY = dict(
    env="probe/MemoryCue",
    recurrent_size=32,
    hidden_sizes=(32,),
    num_envs=16,
    num_steps=16,
    num_minibatches=2,
    update_epochs=4,
    total_timesteps=20_000,
    lr=3e-3,
)
SMALL = dict(
    recurrent="gru",
    recurrent_size=8,
    hidden_sizes=(16,),
    num_envs=4,
    num_steps=16,
    num_minibatches=2,
    update_epochs=2,
    total_timesteps=256,
)
QUIET = dict(compile_cache=False, progress=False)


def by_hand(network, params, carry, obs, dones):
    """The network stepped one time step at a time in Python, resets applied after each
    done: (log-prob function inputs per step, values, pre-reset carries), the reference
    the rollout and the update must both compute."""
    dists, values, hidden = [], [], []
    for t in range(dones.shape[0]):
        obs_t = jax.tree.map(lambda x, t=t: x[t], obs)
        carry, dist, value = network.apply(params, carry, obs_t, method="step")
        dists.append(dist)
        values.append(value)
        hidden.append(carry)
        carry = reset_carry(carry, dones[t])
    stack = lambda xs: jax.tree.map(lambda *a: jnp.stack(a), *xs)
    return stack(dists), jnp.stack(values), stack(hidden)


def _flax_params(kind, params, size):
    """Our cell's parameters laid out as flax's GRUCell / OptimizedLSTMCell's."""
    p = params["params"]
    w_x, b, w_h = p["input"]["kernel"], p["input"]["bias"], p["recurrent"]["kernel"]
    gates = "rzn" if kind == "gru" else "ifgo"
    out = {}
    for i, g in enumerate(gates):
        cols = slice(i * size, (i + 1) * size)
        if kind == "gru":
            out["i" + g] = {"kernel": w_x[:, cols], "bias": b[cols]}
            out["h" + g] = {"kernel": w_h[:, cols]}
        else:  # flax puts the LSTM's one bias per gate on the hidden term
            out["i" + g] = {"kernel": w_x[:, cols]}
            out["h" + g] = {"kernel": w_h[:, cols], "bias": b[cols]}
    if kind == "gru":
        out["hn"]["bias"] = p["recurrent_bias"]
    return {"params": out}


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_cells_compute_flax_cells_functions(kind):
    """The split cells (input projection hoisted out of the time scan) are flax's
    GRUCell and OptimizedLSTMCell: same outputs and carries for the same weights."""
    import flax.linen as nn

    size, k = 5, jax.random.split(jax.random.key(0), 4)
    x = jax.random.normal(k[0], (3, 4))
    h = jax.random.normal(k[1], (3, size))
    carry = h if kind == "gru" else (jax.random.normal(k[2], (3, size)), h)
    ours = GRU(size) if kind == "gru" else LSTM(size)

    def step(cell, carry, x):
        return cell(carry, cell.project(x))

    params = ours.init(k[3], carry, x, method=step)
    got = ours.apply(params, carry, x, method=step)
    theirs = nn.GRUCell(features=size) if kind == "gru" else nn.OptimizedLSTMCell(features=size)
    want = theirs.apply(_flax_params(kind, params, size), carry, x)
    assert_trees_close(got, want, atol=1e-6)
    # Each gate's recurrent block starts orthogonal, as in flax's cells.
    w_h = params["params"]["recurrent"]["kernel"]
    for block in jnp.split(w_h, 3 if kind == "gru" else 4, axis=1):
        np.testing.assert_allclose(block.T @ block, np.eye(size), atol=1e-5)


@pytest.fixture(scope="module", params=["gru", "lstm"])
def rollout(request):
    config = Config(recurrent=request.param, **ROLLOUT)
    setup = make_setup(config)
    state = init(config, jax.random.key(3))
    _, traj, _ = collect_rollout(
        setup, config, state.params, rollout_carry(state), jax.random.key(4)
    )
    dones = traj.terminated | traj.truncated
    assert traj.terminated.any() and traj.truncated.any()  # both ends occur
    return config, setup.network, state, traj, dones


def test_the_step_after_an_episode_end_starts_from_the_initial_state(rollout):
    _, network, state, traj, dones = rollout
    T, B = dones.shape
    # Every step computed from the initial (zero) state, as if an episode began there.
    _, fresh, _ = network.apply(
        state.params, initial_carry(network, (T, B)), traj.obs, method="step"
    )
    fresh_lp = np.asarray(fresh.log_prob(traj.action))
    log_prob = np.asarray(traj.log_prob)
    after = np.zeros_like(np.asarray(dones))
    after[1:] = np.asarray(dones)[:-1]
    for kind in (traj.terminated, traj.truncated):
        ended = np.zeros_like(after)
        ended[1:] = np.asarray(kind)[:-1]
        assert ended.any()
        np.testing.assert_allclose(log_prob[ended], fresh_lp[ended], rtol=1e-5, atol=1e-6)
    # Inside an episode the carry matters: the same numbers from a reset state differ.
    inside = ~after
    inside[0] = False  # the run's first step also starts from the initial state
    assert np.max(np.abs(log_prob[inside] - fresh_lp[inside])) > 1e-4
    np.testing.assert_allclose(log_prob[0], fresh_lp[0], rtol=1e-5, atol=1e-6)


def test_rollout_equals_the_network_stepped_by_hand(rollout):
    _, network, state, traj, dones = rollout
    dists, values, _ = by_hand(network, state.params, state.carry, traj.obs, dones)
    np.testing.assert_allclose(traj.log_prob, dists.log_prob(traj.action), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(traj.value, values, rtol=1e-5, atol=1e-5)


def test_truncation_bootstraps_from_the_final_observation_and_pre_reset_carry(rollout):
    config, network, state, traj, dones = rollout
    _, _, hidden = by_hand(network, state.params, state.carry, traj.obs, dones)
    # The true next observation of every step (the final one where an episode ended),
    # from the same scan collect_rollout ran.
    _, rec = step_records(
        make_setup(config), config, state.params, rollout_carry(state), jax.random.key(4)
    )
    np.testing.assert_array_equal(rec.action, traj.action)  # the same rollout
    trunc = np.asarray(traj.truncated & ~traj.terminated)
    final_obs = rec.final_obs
    expected = network.apply(state.params, hidden, final_obs, method="value_step")
    from_reset = network.apply(
        state.params, initial_carry(network, dones.shape), final_obs, method="value_step"
    )
    got = np.asarray(traj.next_value)
    np.testing.assert_allclose(got[trunc], np.asarray(expected)[trunc], rtol=1e-5, atol=1e-5)
    assert np.max(np.abs(got[trunc] - np.asarray(from_reset)[trunc])) > 1e-4
    # Where no episode ended, the bootstrap is the next step's own value.
    live = ~np.asarray(dones)[:-1]
    np.testing.assert_allclose(
        got[:-1][live], np.asarray(traj.value)[1:][live], rtol=1e-5, atol=1e-5
    )


def test_sequence_minibatches_keep_whole_sequences_and_match_step_by_step(rollout):
    config, network, state, traj, dones = rollout
    batch = training_batch(config, traj, None, state.carry)
    minibatches = sequence_minibatches(jax.random.key(5), batch, config.num_minibatches)
    T, B = dones.shape
    assert minibatches.advantages.shape == (2, T, B // 2)
    # Other parameters than the rollout's, so that ratios and clipping are not trivial.
    params = jax.tree.map(
        lambda p: p + 0.5 * jax.random.normal(jax.random.key(6), p.shape), state.params
    )
    settings = StepSettings(
        lr=jnp.float32(1e-3),
        clip_eps=jnp.float32(0.2),
        beta=jnp.float32(1),
        ent_coef=config.ent_coef,
    )
    for m in range(2):
        mb = jax.tree.map(lambda x, m=m: x[m], minibatches)
        # At the rollout's parameters the re-run sequence reproduces its log-probs.
        dist, _ = unroll(network, state.params, mb.carry, mb.obs, mb.dones)
        np.testing.assert_allclose(dist.log_prob(mb.action), mb.log_prob, rtol=1e-5, atol=1e-5)
        loss, metrics = ppo_loss(params, network, config, mb, settings)
        # The same loss from the network stepped by hand over the same sequences.
        dists, values, _ = by_hand(network, params, mb.carry, mb.obs, mb.dones)
        ratio = jnp.exp(dists.log_prob(mb.action) - mb.log_prob)
        adv = (mb.advantages - mb.advantages.mean()) / (mb.advantages.std() + 1e-8)
        pg = -jnp.mean(jnp.minimum(ratio * adv, jnp.clip(ratio, 0.8, 1.2) * adv))
        clipped = mb.value + jnp.clip(values - mb.value, -0.2, 0.2)
        vf = 0.5 * jnp.mean(jnp.maximum((values - mb.returns) ** 2, (clipped - mb.returns) ** 2))
        entropy = jnp.mean(dists.entropy())
        expected = pg + 0.5 * vf - 0.01 * entropy
        np.testing.assert_allclose(metrics["policy_loss"], pg, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(metrics["value_loss"], vf, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(loss, expected, rtol=1e-4, atol=1e-6)
        assert float(metrics["clip_frac"]) > 0  # the perturbation reached the clip


@pytest.fixture(scope="module")
def memory_runs():
    """The memory probe trained with and without a GRU at the same budget."""
    runs = {}
    for recurrent in (None, "gru"):
        config = Config(recurrent=recurrent, **MEMORY)
        runs[recurrent] = (config, jax.jit(purejaxppo.train)(config, jax.random.key(0)))
    return runs


def test_gru_recalls_the_cue_and_the_mlp_cannot(memory_runs):
    returns = {}
    for recurrent, (config, out) in memory_runs.items():
        ev = evaluate(config, out.state, jax.random.key(1), num_episodes=200)
        returns[recurrent] = float(np.mean(ev.returns))
    assert returns["gru"] >= 0.9  # the optimum is 1
    assert returns[None] <= 0.7  # chance is 0.5: without memory the cue is gone


def test_recurrent_policy_acts_with_a_carry_and_exports(memory_runs, tmp_path):
    config, out = memory_runs["gru"]
    act = make_policy(config, out.state, deterministic=True)
    env = MemoryCue()
    episode = run_episode(env, env.default_params, act, jax.random.key(2))
    assert len(episode.rewards) == 4 and episode.rewards.sum() == 1.0
    # One observation with its own carry equals a batch of them.
    obs = jnp.eye(3)[:2]  # the two cues, as first observations
    batch_actions, batch_carry = act(obs, act.initial_carry((2,)))
    for i in range(2):
        a, c = act(obs[i], act.initial_carry())
        assert int(a) == int(batch_actions[i])
        assert_trees_close(c, jax.tree.map(lambda x, i=i: x[i], batch_carry))
    with pytest.raises(TypeError, match=r"act\(obs, carry, key=None\)"):
        act(obs[0], jax.random.key(0))
    # Exported: the same actions and carries, jitted, without the env.
    save_policy(tmp_path / "policy", config, out.state)
    loaded = load_policy(tmp_path / "policy", deterministic=True)
    assert loaded.recurrent
    carry_a, carry_b = act.initial_carry((2,)), loaded.initial_carry((2,))
    step = jax.jit(loaded)
    for t in range(4):
        x = obs if t == 0 else jnp.zeros((2, 3)).at[:, 2].set(float(t == 3))
        a, carry_a = act(x, carry_a)
        b, carry_b = step(x, carry_b)
        np.testing.assert_array_equal(a, b)
        assert_trees_close(carry_a, carry_b)
    assert list(np.asarray(a)) == [0, 1]  # the cue recalled at the last step
    reset = loaded.reset(carry_b, jnp.array([True, False]))
    assert not np.any(np.asarray(jax.tree.leaves(reset)[0][0]))
    # SB3's predict: the carry as `state` (None: the initial one), reset by episode_start.
    carry_c, state = act.initial_carry((2,)), None
    for t in range(4):
        x = obs if t == 0 else jnp.zeros((2, 3)).at[:, 2].set(float(t == 3))
        a, carry_c = act(x, carry_c)
        b, state = loaded.predict(np.asarray(x), state, episode_start=np.array([t == 0] * 2))
        np.testing.assert_array_equal(b, a)
    assert np.any(np.asarray(jax.tree.leaves(reset)[0][1]))


def test_cli_evaluates_a_recurrent_policy(memory_runs, tmp_path, capsys):
    from purejaxppo.cli import main

    config, out = memory_runs["gru"]
    save_policy(tmp_path / "policy", config, out.state)
    assert main(["eval", str(tmp_path / "policy"), "--episodes", "20"]) == 0
    assert "1.0" in capsys.readouterr().out


def test_recurrent_config_rules():
    with pytest.raises(ValueError, match=r"Config.recurrent='rnn'.*'gru' or 'lstm'"):
        Config(recurrent="rnn")
    with pytest.raises(ValueError, match=r"num_minibatches=4.*whole env sequences.*num_envs=6"):
        Config(recurrent="gru", num_envs=6, num_minibatches=4, num_steps=32)
    Config(num_envs=6, num_minibatches=4, num_steps=32)  # feed-forward splits rows
    with pytest.raises(ValueError, match=r"num_minibatches=2 must divide each device's envs"):
        data_parallel_check(Config(recurrent="gru", num_envs=4, num_minibatches=2), 4)


def test_vmap_over_a_sweep_equals_single_runs():
    config = Config(**SMALL)
    sweep = Config.sweep(config, lr=[1e-3, 3e-3])
    keys = jax.random.split(jax.random.key(0), 2)
    batched = jax.jit(jax.vmap(purejaxppo.train))(sweep, keys)
    single = jax.jit(purejaxppo.train)(config.replace(lr=3e-3), keys[1])
    assert_trees_close(jax.tree.map(lambda x: x[1], batched), single, rtol=1e-4, atol=1e-5)
    assert jax.tree.leaves(batched.state.carry)[0].shape == (2, 4, 8)


def test_fit_in_chunks_equals_one_shot_and_the_guard_stops_a_poisoned_run(tmp_path):
    config = Config(**{**SMALL, "recurrent": "lstm", "shared_torso": True})
    one_shot = jax.jit(purejaxppo.train)(config, jax.random.key(7))
    chunked = fit(config, 7, chunk_updates=2, **QUIET)
    assert_trees_equal(chunked.state, one_shot.state)  # the carry included, bitwise
    with pytest.raises(NonFiniteError, match="non-finite value_loss"):
        fit(config.replace(reward_scale=1e30), 7, out=tmp_path / "run", chunk_updates=2, **QUIET)
