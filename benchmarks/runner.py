"""Cost of the host runner on the "CartPole-default" workload (shared/BENCHMARKS.md).

1. Compile time of a first run and of a second identical run in a new process with
   JAX's persistent compilation cache (a fresh cache directory; each run is a
   `fit(Config(), 0)` in its own Python process; the figure is fit's
   compile_seconds: init + tracing + lowering + compiling or loading the programs).
2. Steps/s of one-shot `jax.jit(train)` against `fit` in 10 chunks: without files;
   with a run directory (CSV/JSONL every chunk, the default checkpoint cadence of
   at most one a minute, so here only the final one); and with a checkpoint after
   every chunk. All in one process, best of --repeats. fit's figure is its whole loop after
   compiling (chunk calls, fetching metrics, logging, checkpoints); the final plot
   and policy export after the loop are reported apart.

    python benchmarks/runner.py --out benchmarks/results/runner-cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

_CHILD = """
import json, sys, time
start = time.perf_counter()
from purejaxppo import Config, fit
imported = time.perf_counter() - start
r = fit(Config(), 0, compile_cache=sys.argv[1], progress=False, export_policy=False)
print(json.dumps({"import_s": imported, "compile_s": r.compile_seconds,
                  "run_s": r.run_seconds, "process_s": time.perf_counter() - start}))
"""


def compile_cache_rows(runs: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="pjp-cache-") as cache:
        for i in range(runs):
            t0 = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-c", _CHILD, cache],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "PUREJAXPPO_COMPILE_CACHE": cache},
            )
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row["wall_s"] = time.perf_counter() - t0
            row["run"] = i + 1
            row = {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}
            rows.append(row)
            print(
                f"run {i + 1} in a new process: compile {row['compile_s']:.2f} s "
                f"(import {row['import_s']:.2f} s, process {row['process_s']:.2f} s)",
                flush=True,
            )
    return rows


def overhead_rows(repeats: int) -> dict:
    import jax

    from purejaxppo import Config, fit, train
    from purejaxppo.runner.bench import warm_up

    warm_up()
    config = Config()
    steps = config.num_updates * config.batch_size
    key = jax.random.key(0)
    compiled = jax.jit(train).lower(config, key).compile()
    one_shot = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(config, key))
        one_shot.append(time.perf_counter() - t0)
    variants = {
        "fit_10_chunks": None,
        # Default run directory: CSV/JSONL after every chunk, checkpoints at most once a
        # minute (here: only the final one).
        "fit_10_chunks_logs": {},
        # Also a checkpoint after every chunk (10 orbax saves).
        "fit_10_chunks_logs_checkpoint_every_chunk": {"checkpoint_seconds": 0},
    }
    loops = {name: [] for name in variants}
    finish = []
    for _ in range(repeats):
        for name, files in variants.items():
            with tempfile.TemporaryDirectory(prefix="pjp-run-") as out:
                t0 = time.perf_counter()
                r = fit(
                    config,
                    0,
                    num_chunks=10,
                    out=None if files is None else out,
                    compile_cache=False,
                    progress=False,
                    **(files or {}),
                )
                total = time.perf_counter() - t0
            loops[name].append(r.loop_seconds)
            if files is not None:
                finish.append(total - r.compile_seconds - r.loop_seconds)
    best = {"one_shot_train": min(one_shot)} | {n: min(v) for n, v in loops.items()}
    rows = {
        name: {"seconds": round(s, 3), "steps_per_s": round(steps / s)} for name, s in best.items()
    }
    base = best["one_shot_train"]
    for name in variants:
        rows[name]["slower_than_one_shot"] = round(best[name] / base - 1, 4)
    rows["after_loop_plot_and_policy_s"] = round(min(finish), 3)
    for name, row in rows.items():
        print(name, row, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-runs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS / "runner-cpu.json")
    args = parser.parse_args()

    from purejaxppo.runner.bench import machine_info

    report = {
        "workload": "CartPole-default",
        "machine": machine_info(),
        "compile_cache": compile_cache_rows(args.cache_runs),
        "overhead": overhead_rows(args.repeats),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
