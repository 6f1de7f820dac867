"""Throughput of `train` on the "CartPole-default" workload (shared/BENCHMARKS.md).

Prints and saves (JSON under benchmarks/results/) for each seed count:
compile seconds, run seconds, env steps/s and the final return (per seed: nanmean
of the last 10 updates' episode_return). It also times, in the same process and at
each seed count, the pieces of an update on their own (rollout, learning epochs,
the shuffle's gathers) and the bare fwd+bwd of the actor-critic on one minibatch,
and reports each piece's share of an update and the network-bound fraction
(fwd+bwd time / update time), so the report says where the time goes.

    python benchmarks/throughput.py                      # 1 and 32 seeds
    python benchmarks/throughput.py --seeds 1 32 1024 --out benchmarks/results/throughput-gpu.json
    python benchmarks/throughput.py --reference      # also time reference_single_file.py
    python benchmarks/throughput.py --op-profile     # also the op-by-op profile (op_profile.py)

On a CPU the script exposes every core as a JAX device (JAX_NUM_CPU_DEVICES, unless
already set) and, for seed counts > 1, also reports the same vmapped `train` split
over those devices with `jax.shard_map` over a "runs" axis: XLA:CPU runs one
program's small matmuls on one core, so independent runs on separate devices are
how a multi-core CPU gets used.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import time
from pathlib import Path

os.environ.setdefault("JAX_NUM_CPU_DEVICES", str(os.cpu_count() or 1))

import jax
import jax.numpy as jnp

import purejaxppo
from purejaxppo.core.losses import Batch, StepSettings, ppo_loss
from purejaxppo.core.rollout import collect_rollout, rollout_carry
from purejaxppo.runner.bench import bench_train, format_row, machine_info, time_compiled, warm_up

try:  # run as a script: benchmarks/ is on sys.path
    import op_profile
    import reference_single_file
except ImportError:  # imported as benchmarks.throughput
    from benchmarks import op_profile, reference_single_file

T = importlib.import_module("purejaxppo.core.train")
update_mod = importlib.import_module("purejaxppo.core.learner")

RESULTS = Path(__file__).parent / "results"


def bench_reference(total_timesteps: int, num_seeds: int) -> dict:
    """The single-file-style baseline, vmapped over seeds on one device."""
    train, steps_per_run = reference_single_file.make_train(total_timesteps)
    keys = jax.random.split(jax.random.key(0), num_seeds)
    compile_s, run_s, _ = time_compiled(jax.vmap(train), keys)
    return {
        "seeds": num_seeds,
        "compile_s": round(compile_s, 3),
        "run_s": round(run_s, 3),
        "steps_per_s": round(num_seeds * steps_per_run / run_s),
    }


def bench_breakdown(
    config: purejaxppo.Config, num_seeds: int, updates: int = 200, repeats: int = 3
) -> dict:
    """Milliseconds per update, vmapped over `num_seeds` seeds, for the whole update
    and the pieces of an update, each run alone as a scan of `updates` updates: the
    rollout; the learning epochs (shuffle + minibatch steps) on a fixed batch; the
    shuffle's minibatch gathers alone; and the bare fwd+bwd of the actor-critic on one
    minibatch, as many times as an update takes gradient steps (the network-bound
    limit: an update cannot cost less than its fwd+bwds). The programs run in turn,
    `repeats` times, and each keeps its best time, so a slow spell of this shared
    machine does not land on one piece only and the shares stay consistent."""
    n = min(updates, config.num_updates)
    keys = jax.random.split(jax.random.key(0), num_seeds)
    states = jax.vmap(T.init, in_axes=(None, 0))(config, keys)
    setup = T.make_setup(config)

    def rollout_only(s):
        def body(carry, k):
            carry, traj, _ = collect_rollout(setup, config, s.params, carry, k)
            return carry, traj.reward.sum()

        return jax.lax.scan(body, rollout_carry(s), jax.random.split(s.key, n))[1]

    b = config.batch_size

    def fixed_batch(key):
        obs = jax.random.normal(key, (b, setup.spec.obs_dim))
        ones = jnp.ones(b)
        return Batch(obs, jnp.zeros(b, jnp.int32), -ones, jnp.zeros(b), ones, ones)

    settings = StepSettings(
        jnp.float32(1e-4), jnp.float32(config.clip_eps), jnp.float32(1.0), config.ent_coef
    )
    learner = update_mod.make_learner(setup.network, config, T.init(config, keys[0]).params)

    def learn_only(s):
        batch = fixed_batch(s.key)

        def body(po, k):
            r = update_mod.update_epochs(learner, settings, batch, po[0], po[1], k)
            return (r.params, r.opt_state), r.metrics["policy_loss"]

        return jax.lax.scan(body, (s.params, s.opt_state), jax.random.split(s.key, n))[1]

    steps_per_update = config.update_epochs * config.num_minibatches

    def shuffle_only(s):
        batch = fixed_batch(s.key)

        def body(total, k):
            split = update_mod.shuffled_minibatches(k, batch, config.num_minibatches)
            return total + split.obs.sum(), None

        keys = jax.random.split(s.key, n * config.update_epochs)
        return jax.lax.scan(body, jnp.float32(0), keys)[0]

    def fwd_bwd_only(s):
        mb = jax.tree.map(lambda x: x[: config.minibatch_size], fixed_batch(s.key))

        def body(p, _):
            g, _ = jax.grad(ppo_loss, has_aux=True)(p, setup.network, config, mb, settings)
            return jax.tree.map(lambda a, d: a - 1e-6 * d, p, g), None

        return jax.lax.scan(body, s.params, None, length=n * steps_per_update)[0]

    def update_only(s):
        return jax.lax.scan(lambda st, _: T.update(config, st), s, None, length=n)[1]

    pieces = {
        "total": update_only,
        "rollout": rollout_only,
        "learn": learn_only,
        "shuffle": shuffle_only,
        "fwd_bwd": fwd_bwd_only,
    }
    compiled = {name: jax.jit(jax.vmap(fn)).lower(states).compile() for name, fn in pieces.items()}
    best = dict.fromkeys(pieces, float("inf"))
    for _ in range(repeats):
        for name, program in compiled.items():
            t0 = time.perf_counter()
            jax.block_until_ready(program(states))
            best[name] = min(best[name], time.perf_counter() - t0)
    out = {"seeds": num_seeds, "updates_timed": n, "repeats": repeats}
    for name, run_s in best.items():
        out[f"{name}_ms_per_update"] = round(1e3 * run_s / n, 4)
    return out


def with_shares(bd: dict) -> dict:
    """The breakdown with each piece's share of the whole update (timed the same way):
    the rest (GAE, normalisation, metrics) is what the rollout and learning leave."""
    bd = dict(bd)
    total_ms = bd["total_ms_per_update"]
    for name in ("rollout", "learn", "shuffle"):
        bd[f"{name}_share"] = round(bd[f"{name}_ms_per_update"] / total_ms, 3)
    bd["rest_share"] = round(1 - bd["rollout_share"] - bd["learn_share"], 3)
    bd["network_bound_fraction"] = round(bd["fwd_bwd_ms_per_update"] / total_ms, 3)
    return bd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--total-timesteps", type=int, default=500_000)
    parser.add_argument("--out", type=Path, default=RESULTS / "throughput-cpu.json")
    parser.add_argument("--no-breakdown", action="store_true")
    parser.add_argument(
        "--op-profile",
        action="store_true",
        help="also profile one run per seed count op by op (benchmarks/op_profile.py)",
    )
    parser.add_argument(
        "--reference",
        action="store_true",
        help="also time benchmarks/reference_single_file.py (same workload) in this process",
    )
    args = parser.parse_args()

    config = purejaxppo.Config(env="CartPole-v1", total_timesteps=args.total_timesteps)
    # Backend start-up and first-compile costs go here, not into the first timed row.
    warm_up()
    report = {
        "workload": "CartPole-default",
        "date": datetime.date.today().isoformat(),
        "machine": machine_info(),
        "config": {
            "num_envs": config.num_envs,
            "num_steps": config.num_steps,
            "update_epochs": config.update_epochs,
            "num_minibatches": config.num_minibatches,
            "total_timesteps": config.num_updates * config.batch_size,
        },
        "runs": [],
    }
    num_devices = jax.device_count()
    plan = [(s, 1) for s in args.seeds]
    plan += [(s, num_devices) for s in args.seeds if num_devices > 1 and s % num_devices == 0]
    for seeds, devices in plan:
        row = bench_train(config, seeds, devices)
        report["runs"].append(row)
        print(format_row(row), flush=True)
    if args.reference:
        report["reference_single_file"] = []
        for seeds in args.seeds:
            ref = bench_reference(args.total_timesteps, seeds)
            ours = next(r for r in report["runs"] if r["seeds"] == seeds and r["devices"] == 1)
            ref["purejaxppo_speedup"] = round(ours["steps_per_s"] / ref["steps_per_s"], 3)
            report["reference_single_file"].append(ref)
            print(
                f"reference seeds={seeds:5d}  compile {ref['compile_s']:6.2f} s  "
                f"{ref['steps_per_s'] / 1e3:8.1f}k steps/s  "
                f"purejaxppo/reference = {ref['purejaxppo_speedup']:.2f}x",
                flush=True,
            )
    if not args.no_breakdown:
        report["breakdown"] = []
        for seeds in args.seeds:
            bd = with_shares(bench_breakdown(config, seeds))
            report["breakdown"].append(bd)
            print(f"per update ({seeds} seeds):", json.dumps(bd), flush=True)
    if args.op_profile:
        # A shorter run of the same workload: the trace holds every op it executes.
        short = config.replace(total_timesteps=min(config.total_timesteps, 100_000))
        report["op_profile"] = [op_profile.op_profile(short, seeds) for seeds in args.seeds]
        for p in report["op_profile"]:
            print(op_profile.format_profile(p), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
