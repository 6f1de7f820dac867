"""Presets against the returns their sources publish.

Each preset that fits this machine trains over several seeds in one vmapped call
(classic control at the preset's own budget; MinAtar at a stated reduced budget) and
each seed's final policy is evaluated on fresh envs twice: sampling its actions, as
the sources with a published return do (CleanRL's episodic returns, gymnax-blines'
test rollouts), and deterministically (the mode). The table reports the
interquartile mean (IQM) over seeds of the per-seed evaluation return, with a 95%
percentile-bootstrap confidence interval over seeds, next to the source's published
return, and flags a sampled IQM more than 10% below it.

    python benchmarks/presets.py                       # classic control, 4 seeds
    python benchmarks/presets.py --names Breakout-MinAtar --timesteps 1e6

Writes benchmarks/results/presets-cpu.json (every number) and
purejaxppo/presets-measured.json (one line per preset, shown by `purejaxppo presets`).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

# Run as a script, this folder is sys.path[0], and benchmarks/brax.py would shadow the
# brax package that the Brax presets import.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import jax  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

import purejaxppo  # noqa: E402
from purejaxppo import Config  # noqa: E402
from purejaxppo.presets import MEASURED_FILE, PRESETS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CLASSIC = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1")


def iqm(x: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% (scipy's 25% trimmed mean)."""
    return float(stats.trim_mean(x, 0.25))


def bootstrap_ci(x: np.ndarray, samples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the IQM, resampling seeds."""
    rng = np.random.default_rng(seed)
    draws = rng.choice(x, size=(samples, len(x)), replace=True)
    values = stats.trim_mean(draws, 0.25, axis=1)
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def _round(x: float) -> float:
    """Two decimals, and 0 rather than -0."""
    return round(float(x), 2) + 0.0


def measure(name: str, seeds: int, episodes: int, timesteps: int | None) -> dict:
    config = Config.preset(name)
    if timesteps is not None:
        config = config.replace(total_timesteps=timesteps)
    keys = jax.random.split(jax.random.key(0), seeds)
    start = time.perf_counter()
    out = jax.block_until_ready(
        jax.jit(jax.vmap(purejaxppo.train, in_axes=(None, 0)))(config, keys)
    )
    seconds = time.perf_counter() - start
    eval_keys = jax.random.split(jax.random.key(1), seeds)
    preset = PRESETS[name]
    row = {
        "preset": name,
        "total_timesteps": config.num_updates * config.batch_size,
        "preset_timesteps": Config.preset(name).num_updates * config.batch_size,
        "seeds": seeds,
        "episodes_per_seed": episodes,
        "published_return": preset.published_return,
        "published": preset.published,
        "note": preset.note,
        "seconds_incl_compile": round(seconds, 1),
    }
    for deterministic in (True, False):

        def evaluate(state, key, deterministic=deterministic):
            return purejaxppo.evaluate(
                config, state, key, num_episodes=episodes, deterministic=deterministic
            ).returns

        returns = np.asarray(jax.jit(jax.vmap(evaluate))(out.state, eval_keys))  # [seeds, eps]
        per_seed = returns.mean(axis=1)
        low, high = bootstrap_ci(per_seed)
        result = {
            "per_seed": [_round(r) for r in per_seed],
            "iqm": _round(iqm(per_seed)),
            "ci95": [_round(low), _round(high)],
        }
        if deterministic:
            row.update(result)
        else:
            row["sampled"] = result
    published = preset.published_return
    if published is not None:
        # The sources' protocol: CleanRL's episodic returns and gymnax-blines' test
        # rollouts both sample actions.
        reached = row["sampled"]["iqm"]
        row["within_10_percent"] = bool(reached >= published - 0.1 * abs(published))
    return row


def _iqm_text(result: dict | None) -> str:
    if result is None:
        return "—"
    return f"{result['iqm']:g} [{result['ci95'][0]:g}, {result['ci95'][1]:g}]"


def measured_line(row: dict) -> str:
    budget = f"{row['total_timesteps']:,} steps"
    if row["total_timesteps"] < row["preset_timesteps"]:
        budget += f" (reduced from {row['preset_timesteps']:,})"
    sampled = "" if "sampled" not in row else f"sampled IQM {_iqm_text(row['sampled'])}, "
    return (
        f"{sampled}deterministic IQM {_iqm_text(row)} (95% CIs) over {row['seeds']} seeds, "
        f"{row['episodes_per_seed']} episodes each, {budget} "
        "(benchmarks/presets.py, 2-core CPU)"
    )


def markdown(rows: list[dict]) -> str:
    lines = [
        "| preset | budget (steps) | published | sampled IQM [95% CI] | "
        "deterministic IQM [95% CI] | within 10% |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        published = "—" if r["published_return"] is None else f"{r['published_return']:g}"
        ok = {True: "yes", False: "**no**"}.get(r.get("within_10_percent"), "—")
        lines.append(
            f"| {r['preset']} | {r['total_timesteps']:,} | {published} | "
            f"{_iqm_text(r.get('sampled'))} | {_iqm_text(r)} | {ok} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", nargs="*", default=list(CLASSIC))
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--episodes", type=int, default=32)
    parser.add_argument("--timesteps", type=float, default=None, help="override the budget")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/presets-cpu.json")
    args = parser.parse_args()
    timesteps = None if args.timesteps is None else int(args.timesteps)
    previous = json.loads(args.out.read_text())["rows"] if args.out.exists() else []
    rows = {r["preset"]: r for r in previous}
    for name in args.names:
        row = measure(name, args.seeds, args.episodes, timesteps)
        row["command"] = f"python benchmarks/presets.py --names {name} --seeds {args.seeds}" + (
            "" if timesteps is None else f" --timesteps {timesteps}"
        )
        print(json.dumps(row), flush=True)
        rows[name] = row
    ordered = [rows[n] for n in PRESETS if n in rows]
    device = jax.devices()[0].device_kind
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "command": "per row (rows come from several invocations)",
                "machine": f"{platform.machine()}, {jax.device_count()} x {device}",
                "jax": jax.__version__,
                "rows": ordered,
            },
            indent=1,
        )
        + "\n"
    )
    measured = {r["preset"]: measured_line(r) for r in ordered}
    (ROOT / "purejaxppo" / MEASURED_FILE).write_text(json.dumps(measured, indent=1) + "\n")
    print(markdown(ordered))


if __name__ == "__main__":
    main()
