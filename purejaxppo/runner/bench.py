"""Throughput measurement of `train`: compile time, env steps/s and final return for
vmapped seeds, optionally split over devices. Used by `purejaxppo bench` and
`benchmarks/throughput.py`."""

from __future__ import annotations

import datetime
import os
import platform
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from purejaxppo.config import Config
from purejaxppo.core.train import train
from purejaxppo.runner.layout import nanmean


def time_compiled(fn, *args) -> tuple[float, float, Any]:
    """(compile seconds, run seconds, output) of jax.jit(fn)(*args)."""
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    return compile_s, time.perf_counter() - t0, out


def warm_up() -> None:
    """Pay backend start-up and the first compile outside the timed rows."""
    jax.block_until_ready(jax.jit(lambda x: jnp.tanh(x) @ x)(jnp.ones((4, 4))))


# One function object, so that timing the same config and seed count twice in a process
# reuses JAX's compiled program (the second compile_s is then the cache lookup).
per_seed_train = jax.vmap(train, in_axes=(None, 0))


def bench_train(config: Config, num_seeds: int, num_devices: int = 1) -> dict[str, Any]:
    """vmap(train) over seeds; with num_devices > 1, shard_map of it over a "runs"
    axis of that many devices (seeds split evenly, no collectives)."""
    if num_seeds % num_devices:
        raise ValueError(f"bench: seeds={num_seeds} must be a multiple of devices={num_devices}")
    keys = jax.random.split(jax.random.key(0), num_seeds)
    if num_devices == 1:
        compile_s, run_s, out = time_compiled(per_seed_train, config, keys)
    else:
        mesh = jax.make_mesh((num_devices,), ("runs",), devices=jax.devices()[:num_devices])
        # check_vma=False: train's scan carries start as unvarying constants; runs
        # never communicate, so there is nothing for the check to protect here.
        sharded = jax.shard_map(
            lambda k: per_seed_train(config, k),
            mesh=mesh,
            in_specs=P("runs"),
            out_specs=P("runs"),
            check_vma=False,
        )
        keys = jax.device_put(keys, NamedSharding(mesh, P("runs")))
        compile_s, run_s, out = time_compiled(sharded, keys)
    steps = num_seeds * config.num_updates * config.batch_size
    returns = np.asarray(out.metrics["episode_return"])  # [seeds, updates]
    final = np.array([nanmean(r[-10:]) for r in returns])  # NaN: no episode ended
    ended = final[~np.isnan(final)]

    def number(x: float) -> float | None:  # JSON has no NaN
        return None if np.isnan(x) else float(x)

    return {
        "seeds": num_seeds,
        "devices": num_devices,
        "compile_s": round(compile_s, 3),
        "run_s": round(run_s, 3),
        "steps_per_s": round(steps / run_s),
        "final_return_mean": number(nanmean(final)),
        "final_return_min": number(ended.min()) if ended.size else None,
        "final_return_max": number(ended.max()) if ended.size else None,
    }


def machine_info() -> dict[str, Any]:
    device = jax.devices()[0]
    return {
        "platform": device.platform,
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "jax": jax.__version__,
        "date": datetime.date.today().isoformat(),
    }


def format_row(row: dict[str, Any]) -> str:
    final = row["final_return_mean"]
    final_text = "n/a" if final is None else f"{final:.1f} (min {row['final_return_min']:.1f})"
    return (
        f"seeds={row['seeds']:5d} devices={row['devices']}  compile {row['compile_s']:6.2f} s  "
        f"run {row['run_s']:7.2f} s  {row['steps_per_s'] / 1e3:8.1f}k steps/s  "
        f"final return mean {final_text}"
    )
