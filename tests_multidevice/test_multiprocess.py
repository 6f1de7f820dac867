"""Two processes x 2 CPU devices on 127.0.0.1 (gloo collectives) train the same
data-parallel run as one process x 4 devices."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

WORKER = Path(__file__).with_name("_worker.py")
TIMEOUT = 300  # seconds for the whole group; killed (process group) on expiry


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # own process group: killed as a whole on timeout
    )


def finish(procs: list[subprocess.Popen]) -> list[str]:
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=TIMEOUT)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    for p, text in zip(procs, outputs, strict=False):
        assert p.returncode == 0, text[-3000:]
    return outputs


def test_two_processes_equal_one_process_with_four_devices(tmp_path):
    address = f"127.0.0.1:{free_port()}"
    two, one = tmp_path / "two.npz", tmp_path / "one.npz"
    outputs = finish([launch(address, str(i), "2", "2", str(two)) for i in range(2)])
    assert any("process 1 of 2: 4 devices" in text for text in outputs)
    finish([launch("unused", "0", "1", "4", str(one))])
    a, b = np.load(two), np.load(one)
    assert a.files == b.files
    for name in a.files:
        np.testing.assert_allclose(
            a[name].astype(np.float64), b[name].astype(np.float64), rtol=1e-5, atol=1e-6
        )


SMALL_FLAGS = [
    "--num-envs", "8", "--num-steps", "16", "--num-minibatches", "2", "--update-epochs", "2",
    "--total-timesteps", "512", "--normalize-obs", "--num-chunks", "2", "--no-compile-cache",
    "--data-parallel",
]  # fmt: skip


def launch_cli(devices: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "purejaxppo", "train", *SMALL_FLAGS, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, "JAX_NUM_CPU_DEVICES": devices, "PUREJAXPPO_COMPILE_CACHE": "0"},
    )


def test_cli_two_processes_train_one_run_and_only_process_0_writes(tmp_path):
    from purejaxppo import load_policy
    from purejaxppo.io.loggers import read_jsonl

    address = f"127.0.0.1:{free_port()}"
    runs = [tmp_path / f"process{i}" for i in range(2)]
    multi = ["--coordinator", address, "--num-processes", "2"]
    outputs = finish(
        [launch_cli("2", *multi, "--process-id", str(i), "--out", str(runs[i])) for i in range(2)]
    )
    assert "data-parallel over 4 devices in 2 process(es)" in outputs[0]
    assert not runs[1].exists()  # process 1 wrote nothing
    single = tmp_path / "single"
    finish([launch_cli("4", "--out", str(single))])
    two, one = load_policy(runs[0] / "policy"), load_policy(single / "policy")
    for a, b in zip(jax_leaves(two.params), jax_leaves(one.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    rows_two, rows_one = read_jsonl(runs[0] / "metrics.jsonl"), read_jsonl(single / "metrics.jsonl")
    assert [r["update"] for r in rows_two] == [1, 2, 3, 4]
    np.testing.assert_allclose(
        [r["value_loss"] for r in rows_two], [r["value_loss"] for r in rows_one], rtol=1e-5
    )
    assert (runs[0] / "checkpoints" / "4").is_dir()


def jax_leaves(tree):
    import jax

    return [np.asarray(x) for x in jax.tree.leaves(tree)]
