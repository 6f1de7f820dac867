"""Where the time of a compiled `train` goes, op by op, on XLA:CPU.

`op_profile(config, num_seeds)` runs the vmapped `train` once under `jax.profiler`,
reads the trace back (`jax.profiler.ProfileData`) and sums the time every XLA op
(thunk) ran on the CPU runtime's worker threads, grouped by kind through the compiled
HLO:

- matmul: a dot, or a fusion around one (YNNPACK's fused dots);
- rng: the threefry rounds of `jax.random` calls (op metadata names a random function);
- sort/gather/scatter: the minibatch shuffle's permutation and row gathers;
- data movement: copies, slices, concatenations and in-place updates (scan outputs);
- elementwise/reduce: every other fusion (activations, losses, Adam, GAE, metrics).

It also reports how busy the worker threads were (op time / wall time / threads):
XLA:CPU runs independent ops of one program (the actor's and the critic's layers) on
different threads at once. The profiler adds a fixed cost to every op, so the shares
of ops that take a few microseconds (one seed) are overstated; at 32 seeds most ops
take tens to hundreds of microseconds and the shares are close to the truth.

    python benchmarks/op_profile.py --seeds 32            # or: throughput.py --op-profile
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import jax

import purejaxppo
from purejaxppo.runner.bench import per_seed_train, warm_up

# Run as a script, this folder is sys.path[0] and its brax.py would shadow the brax
# package: drop it before anything imports brax (nothing above does). Imported by
# throughput.py, the importer's path is left alone.
if __name__ == "__main__":
    _HERE = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

KINDS = ("matmul", "rng", "sort/gather/scatter", "data movement", "elementwise/reduce")
# Ops that only move data; a fusion made of nothing else is "data movement".
MOVES = {
    "bitcast",
    "broadcast",
    "concatenate",
    "copy",
    "dynamic-slice",
    "dynamic-update-slice",
    "get-tuple-element",
    "pad",
    "parameter",
    "constant",
    "reshape",
    "slice",
    "transpose",
    "tuple",
    "iota",
}
# Ops whose trace events contain other ops' events (counted there, not here).
CONTAINERS = {"while", "conditional", "call"}
RNG_NAMES = re.compile(r"threefry|random_bits|random_split|_uniform|_normal|_gumbel")
INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = .*? ([a-z][\w\-]*)\((.*)$")


def classify_ops(hlo_text: str) -> dict[str, str]:
    """Op name -> kind (or "container") for every instruction of the compiled module
    that is not inside a fused computation (those are what the runtime executes)."""
    computations: dict[str, list[tuple[str, str, str]]] = {}
    name = None
    for line in hlo_text.splitlines():
        head = re.match(r"^(?:ENTRY )?%([\w.\-]+) ", line)
        if head and line.rstrip().endswith("{"):
            name = head.group(1)
            computations[name] = []
        elif name is not None and (m := INSTRUCTION.match(line)):
            computations[name].append(m.groups())

    def opcodes(comp: str) -> set[str]:
        return {op for _, op, _ in computations.get(comp, [])}

    # The bodies and conditions of the rolled threefry loops XLA:CPU emits for RNG
    # calls: everything in them (loop-carry copies included) is RNG time.
    rng_loops = set()
    for instructions in computations.values():
        for _, opcode, rest in instructions:
            if opcode == "while" and RNG_NAMES.search(rest):
                rng_loops.update(re.findall(r"(?:body|condition)=%([\w.\-]+)", rest))
    kinds = {}
    for comp, instructions in computations.items():
        if comp.startswith(("fused_computation", "wrapped_")):
            continue
        for op_name, opcode, rest in instructions:
            called = re.search(r"calls=%([\w.\-]+)", rest)
            inner = opcodes(called.group(1)) if called else {opcode}
            metadata = re.search(r'op_name="([^"]*)"', rest)
            if opcode in CONTAINERS:
                kinds[op_name] = "container"
            elif inner & {"dot", "convolution"}:
                kinds[op_name] = "matmul"
            elif comp in rng_loops or (metadata and RNG_NAMES.search(metadata.group(1))):
                kinds[op_name] = "rng"
            elif inner & {"sort", "gather", "scatter"}:
                kinds[op_name] = "sort/gather/scatter"
            elif inner <= MOVES:
                kinds[op_name] = "data movement"
            else:
                kinds[op_name] = "elementwise/reduce"
    return kinds


def op_profile(config: purejaxppo.Config, num_seeds: int, top: int = 12) -> dict:
    """Per-kind op time of one vmapped `train` run (see the module docstring)."""
    if jax.default_backend() != "cpu":
        return {"seeds": num_seeds, "skipped": "the op profile reads XLA:CPU's threads"}
    keys = jax.random.split(jax.random.key(0), num_seeds)
    # The program throughput.py times: the config's traced fields are arguments, not
    # constants XLA could fold.
    compiled = jax.jit(per_seed_train).lower(config, keys).compile()
    kinds = classify_ops(compiled.as_text())
    jax.block_until_ready(compiled(config, keys))  # first run: allocations, page faults
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir):
            t0 = time.perf_counter()
            jax.block_until_ready(compiled(config, keys))
            wall = time.perf_counter() - t0
        trace = next(Path(trace_dir).rglob("*.xplane.pb"))
        data = jax.profiler.ProfileData.from_file(str(trace))
    per_kind: collections.Counter = collections.Counter()
    per_op: collections.Counter = collections.Counter()
    runs: collections.Counter = collections.Counter()
    threads = 0
    for plane in data.planes:
        for line in plane.lines:
            if "XLAEigen" not in line.name:  # XLA:CPU's worker threads
                continue
            threads += 1
            for event in line.events:
                kind = kinds.get(event.name)
                if kind is None or kind == "container":
                    continue
                per_kind[kind] += event.duration_ns
                per_op[event.name] += event.duration_ns
                runs[event.name] += 1
    busy = sum(per_kind.values())
    if not busy:  # another jaxlib may name its worker threads differently
        return {"seeds": num_seeds, "skipped": "no XLA:CPU worker-thread ops in the trace"}
    updates = config.num_updates
    return {
        "seeds": num_seeds,
        "updates": updates,
        "wall_s_profiled": round(wall, 3),
        "op_ms_per_update": round(busy / 1e6 / updates, 3),
        "ops_run_per_update": round(sum(runs.values()) / updates, 1),
        "worker_threads": threads,
        "thread_busy_fraction": round(busy / 1e9 / wall / max(threads, 1), 3),
        "share": {kind: round(per_kind[kind] / busy, 3) for kind in KINDS},
        "top_ops": [
            {
                "op": op,
                "kind": kinds[op],
                "share": round(ns / busy, 4),
                "us_per_run": round(ns / runs[op] / 1e3, 1),
                "runs_per_update": round(runs[op] / updates, 2),
            }
            for op, ns in per_op.most_common(top)
        ],
    }


def format_profile(p: dict) -> str:
    if "skipped" in p:
        return f"op profile ({p['seeds']} seeds): skipped, {p['skipped']}"
    shares = ", ".join(f"{k} {v:.0%}" for k, v in p["share"].items())
    lines = [
        f"op profile ({p['seeds']} seeds, {p['updates']} updates): "
        f"{p['op_ms_per_update']} ms of op time per update over {p['worker_threads']} "
        f"threads, {p['ops_run_per_update']} ops run per update, threads busy "
        f"{p['thread_busy_fraction']:.0%}",
        f"  by kind: {shares}",
    ]
    for op in p["top_ops"]:
        lines.append(
            f"  {op['share']:6.1%}  {op['us_per_run']:8.1f} us x {op['runs_per_update']:6.2f}"
            f"/update  {op['kind']:20s} {op['op']}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--total-timesteps", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=None, help="also save the JSON here")
    args = parser.parse_args()
    config = purejaxppo.Config(env="CartPole-v1", total_timesteps=args.total_timesteps)
    warm_up()
    profiles = [op_profile(config, s) for s in args.seeds]
    for p in profiles:
        print(format_profile(p), flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(profiles, indent=2) + "\n")
        print(f"saved {args.out}")


if __name__ == "__main__":
    # benchmarks/ is on sys.path when run as a script; benchmarks/brax.py would shadow
    # the brax package.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
    main()
