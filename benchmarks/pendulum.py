"""Pendulum-v1 with its preset: final returns over seeds within the preset's 1e6 steps.

    python benchmarks/pendulum.py --seeds 8 [--out benchmarks/results/pendulum-cpu.json]

Reports the per-seed mean episode return of the last 10 updates and a deterministic
evaluation of each seed's final policy (`purejaxppo.evaluate`, 16 episodes). The
issue's bar: mean return >= -250 within 1e6 steps.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--total-timesteps", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    overrides = {} if args.total_timesteps is None else {"total_timesteps": args.total_timesteps}
    config = purejaxppo.Config.preset("Pendulum-v1", **overrides)
    keys = jax.random.split(jax.random.key(0), args.seeds)
    run = jax.jit(jax.vmap(purejaxppo.train, in_axes=(None, 0)))
    t0 = time.perf_counter()
    compiled = run.lower(config, keys).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = jax.block_until_ready(compiled(config, keys))
    run_s = time.perf_counter() - t0

    returns = np.asarray(out.metrics["episode_return"])  # [seeds, updates]
    last10 = np.nanmean(returns[:, -10:], axis=1)
    evaluate = jax.vmap(
        lambda s, k: purejaxppo.evaluate(config, s, k, num_episodes=16).returns.mean()
    )
    eval_returns = np.asarray(evaluate(out.state, jax.random.split(jax.random.key(1), args.seeds)))
    steps = config.num_updates * config.batch_size
    result = {
        "env": "Pendulum-v1",
        "preset_source": purejaxppo.presets.PRESETS["Pendulum-v1"].source,
        "total_timesteps": steps,
        "seeds": args.seeds,
        "last10_return_per_seed": [round(float(x), 1) for x in last10],
        "last10_return_mean": float(last10.mean()),
        "eval_return_per_seed": [round(float(x), 1) for x in eval_returns],
        "eval_return_mean": float(eval_returns.mean()),
        # Mean over seeds and over each block of 10 updates (not every update ends an
        # episode: Pendulum episodes are 200 steps, rollouts 100).
        "curve_mean_per_10_updates": [
            round(float(np.nanmean(returns[:, i : i + 10])), 1)
            for i in range(0, returns.shape[1], 10)
        ],
        "compile_s": round(compile_s, 1),
        "run_s": round(run_s, 1),
        "steps_per_s": round(steps * args.seeds / run_s),
        "machine": f"{platform.machine()} {jax.devices()[0].platform}, "
        f"{jax.device_count()} device(s), jax {jax.__version__}",
    }
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
