"""Multi-host set-up: a thin wrapper over `jax.distributed.initialize`.

Call it once, first thing in an entry point, in every process (one per host, or one
per GPU), before any JAX computation. Afterwards `jax.devices()` lists the devices of
all processes, every process runs every jitted call on the global mesh, and only
process 0 (`is_primary()`) should write files.
"""

from __future__ import annotations

import jax


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    local_device_ids: list[int] | None = None,
    cpu_collectives: str = "gloo",
) -> None:
    """Join the multi-process JAX runtime.

    coordinator_address: "HOST:PORT" of process 0 (reachable from every process).
    Leave the three arguments None where JAX detects the cluster itself (SLURM,
    Open MPI, Kubernetes/GKE, Cloud TPU environment variables).
    cpu_collectives: the CPU collectives backend for CPU-only processes ("gloo";
    "mpi" needs an MPI build); GPU processes use NCCL whatever this says.
    """
    for name, value in (("num_processes", num_processes), ("process_id", process_id)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise TypeError(f"initialize: {name}={value!r} must be an integer")
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"initialize: num_processes={num_processes} must be >= 1")
    if process_id is not None and num_processes is not None:
        if not 0 <= process_id < num_processes:
            raise ValueError(f"initialize: process_id={process_id} must be in [0, {num_processes})")
    if coordinator_address is not None:
        host, sep, port = coordinator_address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(
                f"initialize: coordinator_address={coordinator_address!r} must be HOST:PORT"
            )
    jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
        local_device_ids=local_device_ids,
    )


def is_primary() -> bool:
    """Whether this is process 0, the one that writes logs and checkpoints."""
    return jax.process_index() == 0
