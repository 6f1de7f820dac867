"""Recurrent PPO: the cost of a GRU on CartPole, and what memory buys on CartPole
without velocities.

    python benchmarks/recurrent.py [--seeds 2] [--total-timesteps 300000]
        [--out benchmarks/results/recurrent-cpu.json]

1. Throughput: CartPole-v1 with the default Config, feed-forward against
   `recurrent="gru"` (everything else equal), one seed each, in one process. Each
   program is also split into its two halves, a jitted rollout (`collect_rollout`)
   and a jitted update (`update_epochs` on a fixed batch), timed alone, which says
   where the recurrent cost goes.
2. Learning: "StatelessCartPole-v1" (positions and angle only) with an MLP and with a
   GRU at the same budget and seeds (vmapped), deterministic evaluation on 32 fresh
   episodes per seed.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jax
import numpy as np

import purejaxppo
from purejaxppo.core.learner import make_learner, update_epochs
from purejaxppo.core.rollout import collect_rollout, rollout_carry
from purejaxppo.core.setup import make_setup
from purejaxppo.core.train import init, step_settings, training_batch

EVAL_EPISODES = 32
POMDP = dict(
    env="StatelessCartPole-v1",
    num_envs=16,
    num_steps=64,
    num_minibatches=4,
    update_epochs=4,
    hidden_sizes=(64,),
    recurrent_size=64,
    lr=1e-3,
    ent_coef=0.01,
)


def best_of(fn, *args, repeats: int = 5) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return min(times)


def halves(config: purejaxppo.Config) -> dict:
    """Seconds per update of the rollout alone and of the update epochs alone."""
    setup = make_setup(config)
    state = init(config, jax.random.key(0))

    @jax.jit
    def rollout(state, key):
        return collect_rollout(setup, config, state.params, rollout_carry(state), key)

    _, traj, _ = rollout(state, jax.random.key(1))
    batch = training_batch(config, traj, None, state.carry)
    learner = make_learner(setup.network, config, state.params)

    @jax.jit
    def learn(state, batch, key):
        return update_epochs(
            learner, step_settings(config, state), batch, state.params, state.opt_state, key
        ).params

    return {
        "rollout_s_per_update": round(best_of(rollout, state, jax.random.key(2)), 5),
        "update_epochs_s_per_update": round(best_of(learn, state, batch, jax.random.key(3)), 5),
    }


def throughput(config: purejaxppo.Config) -> dict:
    run = jax.jit(purejaxppo.train)
    key = jax.random.key(0)
    t0 = time.perf_counter()
    compiled = run.lower(config, key).compile()
    compile_s = time.perf_counter() - t0
    run_s = best_of(compiled, config, key, repeats=2)
    steps = config.num_updates * config.batch_size
    return {
        "recurrent": config.recurrent,
        "compile_s": round(compile_s, 2),
        "run_s": round(run_s, 2),
        "steps_per_s": round(steps / run_s),
        **halves(config),
    }


def learning(config: purejaxppo.Config, seeds: int) -> dict:
    keys = jax.random.split(jax.random.key(0), seeds)
    t0 = time.perf_counter()
    run = jax.jit(jax.vmap(purejaxppo.train, in_axes=(None, 0)))
    out = jax.block_until_ready(run(config, keys))
    seconds = time.perf_counter() - t0
    evaluate = jax.jit(
        jax.vmap(lambda s, k: purejaxppo.evaluate(config, s, k, num_episodes=EVAL_EPISODES).returns)
    )
    per_seed = np.asarray(evaluate(out.state, jax.random.split(jax.random.key(1), seeds))).mean(1)
    returns = np.asarray(out.metrics["episode_return"])
    return {
        "recurrent": config.recurrent,
        "eval_return_per_seed": [round(float(x), 1) for x in per_seed],
        "eval_return_mean": round(float(per_seed.mean()), 1),
        "train_return_last10_mean": round(float(np.nanmean(returns[:, -10:])), 1),
        "curve_mean_per_10_updates": [
            round(float(np.nanmean(returns[:, i : i + 10])), 1)
            for i in range(0, returns.shape[1], 10)
        ],
        "seconds_with_compile": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--total-timesteps", type=int, default=300_000)
    parser.add_argument("--throughput-timesteps", type=int, default=100_352)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    base = purejaxppo.Config(total_timesteps=args.throughput_timesteps)
    arms = [throughput(base.replace(recurrent=r)) for r in (None, "gru")]
    for arm in arms:
        print(json.dumps(arm), flush=True)
    pomdp = purejaxppo.Config(total_timesteps=args.total_timesteps, **POMDP)
    learned = [learning(pomdp.replace(recurrent=r), args.seeds) for r in (None, "gru")]
    for arm in learned:
        print(json.dumps(arm), flush=True)
    ff, gru = arms
    result = {
        "throughput_config": "Config() (CartPole-v1 defaults: 4 envs x 128 steps, 64-64 tanh "
        "MLPs), recurrent_size=128 for the GRU arm",
        "throughput": {"feed_forward": ff, "gru": gru},
        "gru_over_ff_steps_per_s": round(gru["steps_per_s"] / ff["steps_per_s"], 3),
        "pomdp_config": {**POMDP, "total_timesteps": pomdp.num_updates * pomdp.batch_size},
        "pomdp_seeds": args.seeds,
        "pomdp_evaluation": f"deterministic, {EVAL_EPISODES} fresh episodes per seed",
        "pomdp": {"mlp": learned[0], "gru": learned[1]},
        "machine": f"{platform.machine()} {jax.devices()[0].platform}, "
        f"{jax.device_count()} device(s), jax {jax.__version__}",
    }
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
