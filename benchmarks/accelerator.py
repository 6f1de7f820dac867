"""The accelerator suite: one command, one results JSON naming the device.

    python benchmarks/accelerator.py                  # one GPU, about 8 minutes at most
    python benchmarks/accelerator.py --scale tiny     # any CPU, a couple of minutes (tested)

Parts, each timed in this one process (compile and run separately):

1. cartpole: CartPole-default (the throughput workload) vmapped over 1, 32, 1024 and
   4096 seeds: compile s, run s, env steps/s, final return.
2. precision: CartPole-default at 1024 seeds with matmul_precision "float32" (the
   default) and "tensorfloat32": steps/s and final return of each (on the CPU both
   compute float32). The float32 row reuses part 1's compiled program when part 1
   ran that seed count, so its compile_s is then only the cache lookup.
3. brax: ant and hopper at 2048 and 4096 envs, purejaxppo against
   `brax.training.agents.ppo.train` at equal settings (benchmarks/brax.py's
   conversion and measurement: steps/s of each and their ratio, compile time, the
   deterministic return of each at the same env steps).
4. minatar: Breakout-MinAtar with its CNN preset, vmapped seeds.
5. recurrent: CartPole-v1 with a GRU, 1 and 256 seeds.

A part that would start after the time budget (--budget-s, 480 s at full scale) is
recorded as skipped, so the command ends in time on a lent machine; --parts picks
parts. The file goes to benchmarks/results/accelerator-<device kind>.json (the tiny
scale: accelerator-tiny-<platform>.json) unless --out says otherwise.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import jax

import purejaxppo
from purejaxppo.runner.bench import bench_train, machine_info, warm_up

# Run as a script, this folder is sys.path[0] and its brax.py would shadow the brax
# package: drop it before anything imports brax (nothing above does).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

RESULTS = _HERE / "results"

SCALES: dict[str, dict[str, Any]] = {
    "full": {
        "budget_s": 480,
        "cartpole_seeds": [1, 32, 1024, 4096],
        "cartpole_timesteps": 500_000,
        "precision_seeds": 1024,
        "brax_envs": ["ant", "hopper"],
        "brax_num_envs": [2048, 4096],
        # Brax's GPU shape per update (unroll 5, 32 minibatches of num_envs / 2), 2
        # Brax epochs (a steady rate needs 2) of 10 updates.
        "brax_unroll_length": 5,
        "brax_num_minibatches": 32,
        "brax_updates": 20,
        "brax_epochs": 2,
        "minatar_seeds": 32,
        "minatar_timesteps": 1_000_000,
        "recurrent_seeds": [1, 256],
        "recurrent_timesteps": 500_000,
        "eval_episodes": 32,
    },
    "tiny": {
        "budget_s": 900,
        "cartpole_seeds": [1, 4],
        "cartpole_timesteps": 4 * 128 * 2,
        "precision_seeds": 4,
        "brax_envs": ["inverted_pendulum"],
        "brax_num_envs": [8],
        "brax_unroll_length": 2,
        "brax_num_minibatches": 2,
        "brax_updates": 2,
        "brax_epochs": 2,
        "minatar_seeds": 1,
        "minatar_timesteps": 2,  # rounded up to one update below
        "recurrent_seeds": [1],
        "recurrent_timesteps": 4 * 128 * 2,
        "eval_episodes": 2,
    },
}


def brax_benchmark():
    """benchmarks/brax.py as a module (its name would shadow the brax package)."""
    spec = importlib.util.spec_from_file_location("brax_benchmark", _HERE / "brax.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_row(config: purejaxppo.Config, seeds: int) -> dict:
    """vmap(train) over `seeds` seeds: compile s, run s, steps/s, final return."""
    row = bench_train(config, seeds)
    return {k: v for k, v in row.items() if k != "devices"}


def part_cartpole(scale: dict) -> list[dict]:
    config = purejaxppo.Config(env="CartPole-v1", total_timesteps=scale["cartpole_timesteps"])
    return [train_row(config, seeds) for seeds in scale["cartpole_seeds"]]


def part_precision(scale: dict) -> list[dict]:
    rows = []
    for precision in ("float32", "tensorfloat32"):
        config = purejaxppo.Config(
            env="CartPole-v1",
            total_timesteps=scale["cartpole_timesteps"],
            matmul_precision=precision,
        )
        rows.append({"matmul_precision": precision, **train_row(config, scale["precision_seeds"])})
    return rows


def part_brax(scale: dict) -> list[dict]:
    bench = brax_benchmark()
    rows = []
    for env in scale["brax_envs"]:
        for num_envs in scale["brax_num_envs"]:
            shape = {
                "num_envs": num_envs,
                "unroll_length": scale["brax_unroll_length"],
                "batch_size": num_envs // scale["brax_num_minibatches"],
                "num_minibatches": scale["brax_num_minibatches"],
                "num_updates_per_batch": 4,
                "brax_epochs": scale["brax_epochs"],
            }
            per_update = num_envs * scale["brax_unroll_length"]
            updates, total, epochs = bench.budget(shape, per_update * scale["brax_updates"])
            config = bench.our_config(env, shape, total)
            kwargs = bench.brax_kwargs(env, shape, total, epochs, seed=0)
            ours = bench.run_ours(env, config, 0, scale["eval_episodes"], check_eval=False)
            theirs = bench.run_brax(env, kwargs, scale["eval_episodes"])
            row = {"env": env, "num_envs": num_envs, "updates": updates, "env_steps": total}
            row |= {"purejaxppo": ours, "brax": theirs}
            if "steps_per_s" in theirs:
                row["steps_per_s_ratio_ours_over_brax"] = round(
                    ours["steps_per_s"] / theirs["steps_per_s"], 3
                )
            rows.append(row)
            print(f"  brax {env} {num_envs} envs: {json.dumps(row)}", flush=True)
    return rows


def part_minatar(scale: dict) -> list[dict]:
    preset = purejaxppo.Config.preset("Breakout-MinAtar")
    total = max(scale["minatar_timesteps"], preset.batch_size)
    config = preset.replace(total_timesteps=total)
    row = {"env": "Breakout-MinAtar", "image_encoder": config.image_encoder}
    return [row | train_row(config, scale["minatar_seeds"])]


def part_recurrent(scale: dict) -> list[dict]:
    config = purejaxppo.Config(
        env="CartPole-v1", recurrent="gru", total_timesteps=scale["recurrent_timesteps"]
    )
    return [{"recurrent": "gru"} | train_row(config, s) for s in scale["recurrent_seeds"]]


RUNNERS = {
    "cartpole": part_cartpole,
    "precision": part_precision,
    "brax": part_brax,
    "minatar": part_minatar,
    "recurrent": part_recurrent,
}
PARTS = tuple(RUNNERS)


def default_out(scale_name: str) -> Path:
    device = jax.devices()[0]
    if scale_name == "tiny":
        return RESULTS / f"accelerator-tiny-{device.platform}.json"
    slug = re.sub(r"[^a-z0-9]+", "-", device.device_kind.lower()).strip("-")
    return RESULTS / f"accelerator-{slug}.json"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=list(SCALES), default="full")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--budget-s", type=float, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    scale = SCALES[args.scale]
    budget = scale["budget_s"] if args.budget_s is None else args.budget_s
    start = time.monotonic()
    warm_up()
    report: dict[str, Any] = {
        "benchmark": "accelerator suite (benchmarks/accelerator.py)",
        "date": datetime.date.today().isoformat(),
        "scale": args.scale,
        "machine": machine_info(),
        "budget_s": budget,
        "parts": {},
    }
    for name in args.parts:
        elapsed = time.monotonic() - start
        if elapsed > budget:
            report["parts"][name] = {"skipped": f"time budget: {elapsed:.0f} s > {budget:.0f} s"}
            print(f"[{name}] skipped (time budget)", flush=True)
            continue
        print(f"[{name}] ...", flush=True)
        t0 = time.monotonic()
        rows = RUNNERS[name](scale)
        report["parts"][name] = {"rows": rows, "wall_s": round(time.monotonic() - t0, 1)}
        for row in rows:
            print(f"  {json.dumps(row)}", flush=True)
    report["wall_s"] = round(time.monotonic() - start, 1)
    out = args.out or default_out(args.scale)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"saved {out} ({report['wall_s']} s)")
    return report


if __name__ == "__main__":
    main()
