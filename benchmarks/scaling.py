"""Env steps/s against the number of devices for `purejaxppo.parallel`'s two modes.

- runs mode: `train_many` of R seeds (default 8) of one config on a D-device "runs"
  mesh (each device trains R / D runs; R is padded when D does not divide it), plus
  the same R runs as a plain `vmap` on one device (`mesh=None`) as the baseline.
  Every D must give the baseline's returns exactly (`matches_vmap`).
- data-parallel mode: `train_sharded` of one CartPole run of 16 envs on a D-device
  "dp" mesh (each device steps 16 / D envs; `num_minibatches` must divide each
  device's batch 16 / D * num_steps), plus plain `jax.jit(train)` of the same config
  as the baseline. The parameter copies must be identical on every device
  (`params_replicated`, from `purejaxppo.parallel.fingerprints`), and the first
  update's return does not depend on D (the per-env keys come from one global split;
  later updates differ with D because each device shuffles its own rows).

Timing. `train_many` / `train_sharded` jit internally, so there is no
`.lower().compile()` to call: each row times a first call (compile + run) and a
second, identical call, and reads from JAX's monitoring events (trace, lowering,
XLA compile) how much of each call was compilation. `run_s` is the second call
without its compilation and gives `steps_per_s`. `second_call_recompiled` says
whether the second call compiled again (it should not: the API caches its compiled
programs per layout).

    python benchmarks/scaling.py                       # D = 1, 2, 4
    python benchmarks/scaling.py --devices 1 2 4 8 --out benchmarks/results/scaling-gpu.json

On a CPU the script makes max(D) fake devices (JAX_NUM_CPU_DEVICES, set before JAX
is imported). They share the machine's cores, so the CPU figures check correctness
and overheads (per-minibatch gradient all-reduces, per-step normaliser merges),
not speed-up. On a machine with real accelerators the D that exceed the device count
are skipped; with one GPU that leaves D = 1, i.e. the runs mode compares the
1-device runs mesh (shard_map of vmap) against plain vmap — the cost of the
shard_map wrapper — and the data-parallel mode a 1-device dp mesh against plain
`train` — the cost of the collectives' bookkeeping.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

DEFAULT_DEVICES = (1, 2, 4)


def _max_devices(argv: list[str] | None = None) -> int:
    args, _ = _parser().parse_known_args(argv)
    return max(args.devices)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=list(DEFAULT_DEVICES))
    parser.add_argument("--runs", type=int, default=8, help="seeds in the runs mode")
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--num-steps", type=int, default=32)
    parser.add_argument("--num-minibatches", type=int, default=4)
    parser.add_argument(
        "--total-timesteps", type=int, default=50_000, help="env steps of each run (both modes)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "scaling-cpu.json"
    )
    return parser


if __name__ == "__main__":
    # Before JAX is imported: the most CPU devices any row needs (no effect on GPUs).
    os.environ.setdefault("JAX_NUM_CPU_DEVICES", str(_max_devices()))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from purejaxppo import Config, train  # noqa: E402
from purejaxppo.runner.bench import machine_info, warm_up  # noqa: E402
from purejaxppo.scale.mesh import fingerprints, train_many, train_sharded  # noqa: E402

# JAX's own timers of a jitted call's compilation: tracing to a jaxpr, lowering to
# MLIR and the XLA compile (including those of eval_shape and of small helper jits).
COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
BACKEND_COMPILE = COMPILE_EVENTS[2]
_spans: list[tuple[str, float, float]] = []


def _record_span(event: str, start: float, end: float, **_: object) -> None:
    if event in COMPILE_EVENTS:
        _spans.append((event, start, end))


jax.monitoring.register_event_time_span_listener(_record_span)


def _union_seconds(spans: list[tuple[str, float, float]]) -> float:
    """Length of the union of the time spans (nested traces are counted once)."""
    total, reach = 0.0, float("-inf")
    for _, start, end in sorted(spans, key=lambda s: s[1]):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def _timed_call(call, *args) -> tuple[float, float, int, object]:
    """(wall seconds, compile seconds, XLA compiles, output) of one blocking call."""
    _spans.clear()
    start = time.perf_counter()
    out = jax.block_until_ready(call(*args))
    wall = time.perf_counter() - start
    compiles = sum(event == BACKEND_COMPILE for event, _, _ in _spans)
    return wall, _union_seconds(_spans), compiles, out


def time_call(call, config: Config, keys) -> dict:
    """Two calls of `call(config, keys)`: the first compiles; whatever the second
    spends tracing, lowering or compiling (JAX's monitoring events) is subtracted
    from its wall time to give `run_s`."""
    first_s, first_compile_s, _, _ = _timed_call(call, config, keys)
    second_s, second_compile_s, second_compiles, out = _timed_call(call, config, keys)
    return {
        "first_call_s": round(first_s, 3),
        "first_call_compile_s": round(first_compile_s, 3),
        "second_call_s": round(second_s, 3),
        "second_call_compile_s": round(second_compile_s, 3),
        "second_call_recompiled": second_compiles > 0,
        "run_s": round(second_s - second_compile_s, 3),
        "out": out,
    }


def final_returns(returns: np.ndarray, last: int = 10) -> np.ndarray:
    """[..., num_updates] -> [...]: nanmean of the last updates (NaN when none ended)."""
    tail = returns[..., -last:]
    count = np.isfinite(tail).sum(-1)
    total = np.where(np.isfinite(tail), tail, 0.0).sum(-1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _round(x: float) -> float:
    return round(float(x), 2)


def _row(
    mode: str, devices: int | None, runs: int, config: Config, timing: dict
) -> tuple[dict, object, np.ndarray]:
    out = timing.pop("out")
    returns = np.asarray(out.metrics["episode_return"])
    steps = runs * config.num_updates * config.batch_size
    finals = np.atleast_1d(final_returns(returns))
    row = {
        "mode": mode,
        "devices": devices,
        "runs": runs,
        "env_steps": steps,
        **timing,
        "steps_per_s": round(steps / timing["run_s"]),
        "final_return_mean": _round(np.nanmean(finals)) if np.isfinite(finals).any() else None,
        "final_return_min": _round(np.nanmin(finals)) if np.isfinite(finals).any() else None,
    }
    return row, out, returns


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f}"


def format_row(row: dict) -> str:
    where = "baseline" if row["devices"] is None else f"D={row['devices']}"
    checks = {k: row[k] for k in ("matches_vmap", "params_replicated") if k in row}
    return (
        f"{row['mode']:<13} {where:<8} runs={row['runs']}  first {row['first_call_s']:6.2f} s"
        f" (compile {row['first_call_compile_s']:5.2f})  second {row['second_call_s']:6.2f} s"
        f" (compile {row['second_call_compile_s']:5.2f})  run {row['run_s']:6.2f} s"
        f"  {row['steps_per_s'] / 1e3:7.1f}k steps/s"
        f"  final return {_fmt(row['final_return_mean'])}  {checks if checks else ''}"
    )


def bench_runs(config: Config, num_runs: int, device_counts: list[int]) -> list[dict]:
    keys = jax.random.split(jax.random.key(0), num_runs)
    rows = []
    base, _, base_returns = _row(
        "runs", None, num_runs, config, time_call(lambda c, k: train_many(c, k), config, keys)
    )
    base["what"] = "train_many(mesh=None): vmap on one device"
    rows.append(base)
    print(format_row(base), flush=True)
    for d in device_counts:
        mesh = jax.make_mesh((d,), ("runs",), devices=jax.devices()[:d])
        call = lambda c, k, mesh=mesh: train_many(c, k, mesh)
        row, _, returns = _row("runs", d, num_runs, config, time_call(call, config, keys))
        row["what"] = f"train_many on a {d}-device runs mesh"
        row["matches_vmap"] = bool(np.allclose(returns, base_returns, equal_nan=True))
        rows.append(row)
        print(format_row(row), flush=True)
    return rows


def bench_data_parallel(config: Config, device_counts: list[int]) -> list[dict]:
    key = jax.random.key(0)
    rows = []
    call = jax.jit(train)  # one jit object: its second call is cached
    base, _, base_returns = _row("data_parallel", None, 1, config, time_call(call, config, key))
    base["what"] = "jax.jit(train): one device, no collectives"
    base["first_update_return"] = _round(base_returns[0])
    rows.append(base)
    print(format_row(base), flush=True)
    for d in device_counts:
        mesh = jax.make_mesh((d,), ("dp",), devices=jax.devices()[:d])
        call = lambda c, k, mesh=mesh: train_sharded(c, k, mesh)
        row, out, returns = _row("data_parallel", d, 1, config, time_call(call, config, key))
        row["what"] = f"train_sharded on a {d}-device dp mesh ({config.num_envs // d} envs each)"
        row["params_replicated"] = bool(np.ptp(fingerprints(out.state.params)) == 0)
        row["first_update_return"] = _round(returns[0])
        rows.append(row)
        print(format_row(row), flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    available = jax.device_count()
    device_counts = [d for d in args.devices if d <= available]
    skipped = [d for d in args.devices if d > available]
    if skipped:
        print(f"skipping D={skipped}: only {available} devices")
    config = Config(
        env="CartPole-v1",
        num_envs=args.num_envs,
        num_steps=args.num_steps,
        num_minibatches=args.num_minibatches,
        lr=1e-3,
        total_timesteps=args.total_timesteps,
    )
    warm_up()
    info = machine_info()
    report = {
        "benchmark": "scaling: env steps/s against devices, purejaxppo.parallel",
        "machine": info,
        "note": (
            f"On CPU the {available} devices are fake (JAX_NUM_CPU_DEVICES) and share "
            f"{info['cpu_count']} cores, so these figures check correctness and overheads, "
            "not speed-up."
            if info["platform"] == "cpu"
            else "Real accelerator devices."
        ),
        "timing": (
            "first_call_s: wall time of the first call (compile + run); second_call_s: "
            "the same call again; *_compile_s: the part of a call spent tracing, lowering "
            "and compiling (union of JAX's monitoring time spans); "
            "second_call_recompiled: the second call ran an XLA compile again; run_s = "
            "second_call_s - second_call_compile_s; steps_per_s = env_steps / run_s."
        ),
        "config": {
            "env": config.env,
            "num_envs": config.num_envs,
            "num_steps": config.num_steps,
            "num_minibatches": config.num_minibatches,
            "update_epochs": config.update_epochs,
            "lr": float(f"{float(config.lr):.6g}"),
            "total_timesteps_per_run": config.num_updates * config.batch_size,
        },
        "skipped_devices": skipped,
        "runs_mode": bench_runs(config, args.runs, device_counts),
        "data_parallel_mode": bench_data_parallel(config, device_counts),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
