"""One process of the multi-process test: `python _worker.py COORD PID NPROC DEVICES OUT`.

With NPROC > 1 it joins the others through purejaxppo.distributed.initialize (gloo
CPU collectives) before anything starts JAX's backend; then every process trains the
same data-parallel run over the global 4-device mesh, and process 0 saves the
parameters, normaliser statistics and metrics (replicated, so its local copy is the
whole value)."""

import os
import sys

coordinator, pid, nproc, ndev, out = sys.argv[1:6]
os.environ["JAX_NUM_CPU_DEVICES"] = ndev
os.environ["PUREJAXPPO_COMPILE_CACHE"] = "0"

from purejaxppo.scale.distributed import initialize, is_primary  # noqa: E402

if int(nproc) > 1:
    initialize(coordinator, int(nproc), int(pid))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from helpers import SMALL  # noqa: E402  (this folder is the script's sys.path[0])

from purejaxppo import Config  # noqa: E402
from purejaxppo.scale.mesh import train_sharded  # noqa: E402

config = Config(**SMALL)
mesh = jax.make_mesh((4,), ("dp",))
result = train_sharded(config, jax.random.key(0), mesh)
replicated = (result.state.params, result.state.obs_stats, result.metrics)
leaves = [np.asarray(x.addressable_data(0)) for x in jax.tree.leaves(replicated)]
print(f"process {jax.process_index()} of {jax.process_count()}: {jax.device_count()} devices")
if is_primary():
    np.savez(out, *leaves)
