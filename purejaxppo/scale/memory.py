"""How many runs fit on a device at once: a compiled program's memory analysis
against the device's free memory.

`train_many` (and `fit` with many seeds) vmap all their runs into one program when
it fits, and otherwise run the largest group that fits, group after group. The
size comes from XLA's own accounting of the compiled program (arguments, outputs
and temporaries, less the donated buffers it reuses) and the device's memory:
`memory_stats()` on GPUs and TPUs, the host's available memory on the CPU.
"""

from __future__ import annotations

import math
import os
from typing import Any

import jax

# Share of the free memory a program may plan to use: XLA's estimate leaves out the
# allocator's fragmentation and the runtime's own buffers.
USABLE_FRACTION = 0.8


def free_bytes(device: Any = None) -> int | None:
    """Bytes free on `device` (default: the first local device), or None when unknown."""
    device = jax.local_devices()[0] if device is None else device
    try:
        stats = device.memory_stats()
    except Exception:  # backends without allocator statistics
        stats = None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    if device.platform == "cpu":
        return host_available_bytes()
    return None


def host_available_bytes() -> int | None:
    """The kernel's MemAvailable (Linux), else the physical memory, else None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def program_bytes(compiled: Any) -> int | None:
    """Peak bytes one device holds while `compiled` runs (arguments + outputs +
    temporaries - donated buffers it writes its outputs into), or None when the
    backend reports no memory analysis."""
    try:
        m = compiled.memory_analysis()
    except Exception:  # not every backend implements it
        return None
    if m is None:
        return None
    total = (
        m.argument_size_in_bytes
        + m.output_size_in_bytes
        - m.alias_size_in_bytes
        + m.temp_size_in_bytes
    )
    return int(total)


def runs_per_group(runs: int, needed: int | None, available: int | None, devices: int = 1) -> int:
    """Runs per group: all `runs` when the program for all of them needs `needed`
    bytes per device and that is within USABLE_FRACTION of `available`; otherwise
    the largest group that fits at the same bytes per run, a multiple of `devices`
    (the devices a group is split over; at least one run each). Unknown figures: all
    runs at once."""
    if needed is None or available is None or needed <= USABLE_FRACTION * available:
        return runs
    per_device = math.ceil(runs / devices)
    per_run = math.ceil(needed / per_device)
    fits = max(1, int(USABLE_FRACTION * available) // per_run)
    return min(runs, fits * devices)
