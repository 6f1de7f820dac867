"""Breakout-MinAtar: the CNN preset against the source's flattened 256-256 MLP, at the
same budget, seeds and evaluation.

    python benchmarks/minatar_cnn.py [--env Breakout-MinAtar] [--seeds 4]
        [--total-timesteps 1000000] [--out benchmarks/results/minatar-cnn-cpu.json]

Both arms are `Config.preset(env)` (gymnax-blines' PPO settings) and differ only in
`image_encoder`: "cnn" (the preset: a 16-channel 3x3 conv before the MLP) or
"flatten" (the source: the 10x10xC grid flattened into the MLP). Each arm trains all
seeds as one vmapped program; each seed's final policy is then evaluated
deterministically on 64 fresh episodes (`purejaxppo.evaluate`). The arms run one after
the other in one process, so their throughputs are comparable.
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

EVAL_EPISODES = 64


def run_arm(config: purejaxppo.Config, seeds: int) -> dict:
    keys = jax.random.split(jax.random.key(0), seeds)
    run = jax.jit(jax.vmap(purejaxppo.train, in_axes=(None, 0)))
    t0 = time.perf_counter()
    compiled = run.lower(config, keys).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = jax.block_until_ready(compiled(config, keys))
    run_s = time.perf_counter() - t0
    evaluate = jax.jit(
        jax.vmap(lambda s, k: purejaxppo.evaluate(config, s, k, num_episodes=EVAL_EPISODES).returns)
    )
    eval_returns = np.asarray(evaluate(out.state, jax.random.split(jax.random.key(1), seeds)))
    returns = np.asarray(out.metrics["episode_return"])  # [seeds, updates]
    steps = config.num_updates * config.batch_size
    per_seed = eval_returns.mean(axis=1)
    return {
        "image_encoder": config.image_encoder,
        "eval_return_per_seed": [round(float(x), 2) for x in per_seed],
        "eval_return_mean": round(float(per_seed.mean()), 2),
        "eval_return_std_over_seeds": round(float(per_seed.std()), 2),
        "train_return_last10_mean": round(float(np.nanmean(returns[:, -10:])), 2),
        "curve_mean_per_10_updates": [
            round(float(np.nanmean(returns[:, i : i + 10])), 2)
            for i in range(0, returns.shape[1], 10)
        ],
        "compile_s": round(compile_s, 1),
        "run_s": round(run_s, 1),
        "steps_per_s": round(steps * seeds / run_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Breakout-MinAtar")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--total-timesteps", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    preset = purejaxppo.Config.preset(args.env, total_timesteps=args.total_timesteps)
    arms = [run_arm(preset.replace(image_encoder=e), args.seeds) for e in ("cnn", "flatten")]
    for arm in arms:
        print(json.dumps(arm), flush=True)
    cnn, mlp = arms
    result = {
        "env": args.env,
        "preset_source": purejaxppo.presets.PRESETS[args.env].source,
        "total_timesteps": preset.num_updates * preset.batch_size,
        "preset_total_timesteps": purejaxppo.Config.preset(args.env).total_timesteps,
        "seeds": args.seeds,
        "evaluation": f"deterministic, {EVAL_EPISODES} fresh episodes per seed",
        "cnn": cnn,
        "flatten_mlp": mlp,
        "cnn_minus_mlp_eval_return": round(cnn["eval_return_mean"] - mlp["eval_return_mean"], 2),
        "machine": f"{platform.machine()} {jax.devices()[0].platform}, "
        f"{jax.device_count()} device(s), jax {jax.__version__}",
    }
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
