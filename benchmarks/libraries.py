"""Learning on each environment library's adapter at CPU budgets, against a random policy.

    python benchmarks/libraries.py [--seeds 2] [--only NAME ...]
        [--out benchmarks/results/libraries-cpu.json]

One task per library, each trained over `--seeds` seeds (vmapped, one program) and
evaluated on 32 fresh episodes per seed, deterministically and sampled, next to the
same evaluation of the untrained policy sampled stochastically (near-uniform: the
policy head starts at logits ~ 0 and mean ~ 0, and only legal actions are drawn
where the env masks them), which is the "random policy" baseline:

- MuJoCo Playground CartpoleBalance: Playground's own PPO setting (the preset) with
  fewer envs per update, so that the budget fits this machine;
- Craftax-Classic-Symbolic: the settings of Craftax's own PPO baseline (lambda 0.8,
  lr 2e-4 annealed, gradient norm 1) on 64 envs instead of 1024 and with a 128-128
  MLP instead of 512x3 (whose update alone takes seconds on 2 cores);
- Jumanji Knapsack (its action mask hides the items that no longer fit);
- XLand-MiniGrid DoorKey-5x5 (a 5x5 egocentric view: a grid POMDP) with the GRU.

The budgets are far below the sources' (60M and 1B steps): the claim measured here is
"learns well above random on this machine", not the sources' final returns.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# Run as a script, this folder is sys.path[0], and benchmarks/brax.py would shadow the
# brax package that Playground imports.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import jax  # noqa: E402
import numpy as np  # noqa: E402

import purejaxppo  # noqa: E402
from purejaxppo import Config  # noqa: E402
from purejaxppo.runner.bench import machine_info  # noqa: E402

EVAL_EPISODES = 32

TASKS = {
    "playground/CartpoleBalance": dict(
        preset="playground/CartpoleBalance",
        num_envs=128,
        num_steps=120,
        num_minibatches=8,
        update_epochs=8,
        total_timesteps=1_000_000,
    ),
    "craftax/Craftax-Classic-Symbolic-v1": dict(
        num_envs=64,
        num_steps=64,
        num_minibatches=8,
        update_epochs=4,
        total_timesteps=500_000,
        hidden_sizes=(128, 128),
        activation="tanh",
        lr=2e-4,
        gamma=0.99,
        gae_lambda=0.8,
        ent_coef=0.01,
        max_grad_norm=1.0,
    ),
    "jumanji/Knapsack-v1": dict(
        num_envs=64,
        num_steps=64,
        num_minibatches=4,
        update_epochs=4,
        total_timesteps=500_000,
        hidden_sizes=(128, 128),
        lr=1e-3,
        gamma=1.0,
        ent_coef=0.01,
    ),
    "xminigrid/MiniGrid-DoorKey-5x5": dict(
        num_envs=64,
        num_steps=64,
        num_minibatches=4,
        update_epochs=4,
        total_timesteps=400_000,
        recurrent="gru",
        recurrent_size=128,
        image_encoder="flatten",
        hidden_sizes=(128,),
        lr=5e-4,
        gamma=0.99,
        ent_coef=0.01,
    ),
}


def make_config(env: str, fields: dict) -> Config:
    fields = dict(fields)
    preset = fields.pop("preset", None)
    if preset is not None:
        return Config.preset(preset, **fields)
    return Config(env=env, **fields)


def run_task(env: str, seeds: int) -> dict:
    config = make_config(env, TASKS[env])
    keys = jax.random.split(jax.random.key(0), seeds)
    t0 = time.perf_counter()
    run = jax.jit(jax.vmap(purejaxppo.train, in_axes=(None, 0)))
    out = jax.block_until_ready(run(config, keys))
    seconds = time.perf_counter() - t0

    def returns(state, key, deterministic):
        return purejaxppo.evaluate(
            config, state, key, num_episodes=EVAL_EPISODES, deterministic=deterministic
        ).returns

    eval_keys = jax.random.split(jax.random.key(1), seeds)
    deterministic = jax.jit(jax.vmap(lambda s, k: returns(s, k, True)))
    stochastic = jax.jit(jax.vmap(lambda s, k: returns(s, k, False)))
    trained = np.asarray(deterministic(out.state, eval_keys)).mean(1)
    sampled = np.asarray(stochastic(out.state, eval_keys)).mean(1)
    untrained_states = jax.vmap(lambda k: purejaxppo.init(config, k))(keys)
    rand = np.asarray(stochastic(untrained_states, eval_keys)).mean(1)
    curve = np.asarray(out.metrics["episode_return"])
    step = max(1, curve.shape[1] // 10)
    return {
        "env": env,
        "config": {k: v for k, v in TASKS[env].items()},
        "total_timesteps": config.num_updates * config.batch_size,
        "seeds": seeds,
        "eval_return_per_seed": [round(float(x), 3) for x in trained],
        "eval_return_mean": round(float(trained.mean()), 3),
        "eval_stochastic_return_per_seed": [round(float(x), 3) for x in sampled],
        "eval_stochastic_return_mean": round(float(sampled.mean()), 3),
        "random_return_mean": round(float(rand.mean()), 3),
        # Mean return of the episodes that ended in each tenth of the run (None: none did).
        "train_return_curve": [
            _round_or_none(curve[:, i : i + step]) for i in range(0, curve.shape[1], step)
        ],
        "seconds_with_compile": round(seconds, 1),
        "steps_per_s_with_compile": round(seeds * config.num_updates * config.batch_size / seconds),
    }


def _round_or_none(returns: np.ndarray) -> float | None:
    finite = returns[np.isfinite(returns)]
    return round(float(finite.mean()), 3) if finite.size else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--only", nargs="*", default=None, help="env ids from TASKS")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    # With --only, the other tasks' results already in --out are kept.
    results = {}
    if args.only and args.out and args.out.exists():
        results = {t["env"]: t for t in json.loads(args.out.read_text())["tasks"]}
    for env in args.only or TASKS:
        result = run_task(env, args.seeds)
        print(json.dumps(result), flush=True)
        results[env] = result
    results = [results[env] for env in TASKS if env in results]
    summary = {
        "evaluation": f"{EVAL_EPISODES} fresh episodes per seed, the trained policy "
        "deterministic (eval_return) and sampled (eval_stochastic_return, the protocol of "
        "Craftax's own baselines); random: the untrained policy sampled (legal actions only)",
        "tasks": results,
        "machine": machine_info(),
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
