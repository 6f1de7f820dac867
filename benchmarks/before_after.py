"""CartPole-default throughput of two versions of purejaxppo, measured in one run.

A refactoring must leave the compiled program as fast as it was. This script checks
out `--before` (a git revision) into a temporary worktree and times `train` from that
tree and from this one alternately (before, after, after, before, ...), each in its
own subprocess on the same workload, so that both see the same machine load. It
prints and saves (benchmarks/results/before-after-cpu.json) the steps/s and compile
seconds per version and seed count, their medians, and the after/before ratios, and
whether the two versions compile CartPole-default to the same XLA program (a hash of
the optimised HLO with source locations and debug metadata removed and its
instructions renumbered, so that renaming a Python function changes nothing): when
they do, a throughput ratio away from 1 is the machine's noise, not the change.

    python benchmarks/before_after.py --before abe18cf
    python benchmarks/before_after.py --before HEAD~3 --seeds 1 --rounds 3
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

# Runs inside each subprocess: the tree under test is first on sys.path. The bench
# helpers moved from purejaxppo.bench to purejaxppo.runner.bench in the layered layout.
PROBE = r"""
import hashlib, json, re, sys
try:
    from purejaxppo.runner.bench import bench_train, machine_info, warm_up
except ImportError:
    from purejaxppo.bench import bench_train, machine_info, warm_up
import jax
import purejaxppo
assert purejaxppo.__file__.startswith(sys.argv[1]), purejaxppo.__file__
warm_up()
config = purejaxppo.Config(env="CartPole-v1", total_timesteps=int(sys.argv[2]))
rows = [bench_train(config, int(s), 1) for s in sys.argv[3:]]

text = jax.jit(purejaxppo.train).lower(config, jax.random.key(0)).compile().as_text()
TABLES = ("FileNames", "FunctionNames", "FileLocations", "StackFrames")
DEBUG = (r", metadata=\{[^}]*\}", r", frontend_attributes=\{[^}]*\}", r"stack_frame_id=\d+")
kept = []
for line in text.splitlines():
    if re.match(r"^\s*\d+ [\"{]", line) or line.strip() in TABLES:
        continue  # the stack-frame tables: source files, functions and lines
    for pattern in DEBUG:
        line = re.sub(pattern, "", line)
    kept.append(line)
# Instruction names come from the Python functions that traced them (a renamed
# helper renames its ops): number them in order of first appearance instead.
names = {}
canonical = re.sub(r"%[\w.\-]+", lambda m: names.setdefault(m.group(0), f"%v{len(names)}"),
                   "\n".join(kept))
program = hashlib.sha256(canonical.encode()).hexdigest()[:16]
print("RESULT " + json.dumps({"rows": rows, "machine": machine_info(), "program": program}))
"""


def run_tree(tree: Path, total_timesteps: int, seeds: list[int]) -> dict:
    """One subprocess timing `train` from `tree`."""
    env = dict(os.environ, PYTHONPATH=str(tree), PUREJAXPPO_COMPILE_CACHE="0")
    env.pop("JAX_NUM_CPU_DEVICES", None)
    args = [sys.executable, "-c", PROBE, str(tree), str(total_timesteps), *map(str, seeds)]
    out = subprocess.run(args, env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"benchmark of {tree} failed:\n{out.stderr[-3000:]}")
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def summarise(samples: dict[str, list[dict]], seeds: list[int]) -> dict:
    """Median steps/s and compile seconds per version and seed count, and the ratios."""
    summary = {}
    for s in seeds:
        row = {}
        for version, runs in samples.items():
            mine = [r for run in runs for r in run["rows"] if r["seeds"] == s]
            row[version] = {
                "steps_per_s": [r["steps_per_s"] for r in mine],
                "compile_s": [r["compile_s"] for r in mine],
                "median_steps_per_s": statistics.median(r["steps_per_s"] for r in mine),
                "median_compile_s": statistics.median(r["compile_s"] for r in mine),
                "final_return_mean": [r["final_return_mean"] for r in mine],
            }
        row["after_over_before_steps_per_s"] = round(
            row["after"]["median_steps_per_s"] / row["before"]["median_steps_per_s"], 3
        )
        row["after_over_before_compile_s"] = round(
            row["after"]["median_compile_s"] / row["before"]["median_compile_s"], 3
        )
        summary[f"seeds_{s}"] = row
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="git revision to compare against")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--rounds", type=int, default=2, help="runs of each version")
    parser.add_argument("--total-timesteps", type=int, default=500_000)
    parser.add_argument("--out", type=Path, default=RESULTS / "before-after-cpu.json")
    args = parser.parse_args()

    rev = subprocess.run(
        ["git", "rev-parse", "--short", args.before], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "-f", str(before), rev], cwd=ROOT, check=True)
        try:
            samples: dict[str, list[dict]] = {"before": [], "after": []}
            trees = {"before": before, "after": ROOT}
            for i in range(args.rounds):
                order = ("before", "after") if i % 2 == 0 else ("after", "before")
                for version in order:
                    result = run_tree(trees[version], args.total_timesteps, args.seeds)
                    samples[version].append(result)
                    for r in result["rows"]:
                        print(
                            f"{version:6s} seeds={r['seeds']:3d} compile {r['compile_s']:6.2f} s "
                            f"{r['steps_per_s'] / 1e3:8.1f}k steps/s "
                            f"return {r['final_return_mean']}",
                            flush=True,
                        )
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT)
    machine = samples["after"][0]["machine"]
    report = {
        "workload": "CartPole-default",
        "date": datetime.date.today().isoformat(),
        "machine": machine,
        "before": rev,
        "after": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "rounds": args.rounds,
        "program_hash": {v: sorted({r["program"] for r in runs}) for v, runs in samples.items()},
        "same_program": len({r["program"] for runs in samples.values() for r in runs}) == 1,
        "summary": summarise(samples, args.seeds),
    }
    print(f"same compiled program: {report['same_program']} {report['program_hash']}")
    for name, row in report["summary"].items():
        print(
            f"{name}: after/before steps/s {row['after_over_before_steps_per_s']:.3f}, "
            f"compile {row['after_over_before_compile_s']:.3f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
