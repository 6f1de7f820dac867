"""benchmarks/accelerator.py runs unchanged at its tiny scale on the CPU, so the first
lent GPU runs it without surprises: every part measured, one JSON naming the device."""

from __future__ import annotations

import importlib.util
import json
import pathlib

import jax
import pytest

SCRIPT = pathlib.Path(__file__).parent.parent / "benchmarks" / "accelerator.py"


# Slow: every part compiles its own programs (Brax's PPO and ours among them), 200 s
# alone and 340 s beside the other worker on 2 cores; `pytest -m slow` runs it.
@pytest.mark.slow
def test_the_accelerator_suite_runs_at_tiny_scale(tmp_path):
    spec = importlib.util.spec_from_file_location("accelerator_suite", SCRIPT)
    suite = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(suite)
    out = tmp_path / "accelerator.json"
    suite.main(["--scale", "tiny", "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["machine"]["platform"] == jax.devices()[0].platform
    assert report["machine"]["device_kind"]
    parts = report["parts"]
    assert set(parts) == set(suite.PARTS)
    assert not any("skipped" in p for p in parts.values()), parts
    seeds = [row["seeds"] for row in parts["cartpole"]["rows"]]
    assert seeds == suite.SCALES["tiny"]["cartpole_seeds"]
    for row in parts["cartpole"]["rows"] + parts["minatar"]["rows"]:
        assert row["steps_per_s"] > 0 and row["compile_s"] > 0
    precisions = [row["matmul_precision"] for row in parts["precision"]["rows"]]
    assert precisions == ["float32", "tensorfloat32"]
    (brax,) = parts["brax"]["rows"]
    assert brax["env_steps"] == brax["purejaxppo"]["env_steps"] == brax["brax"]["env_steps"]
    assert brax["steps_per_s_ratio_ours_over_brax"] > 0
    assert "eval_return_mean" in brax["purejaxppo"] and "eval_return_mean" in brax["brax"]
    # A budget already spent skips the remaining parts and says so.
    skipped = tmp_path / "skipped.json"
    suite.main(
        ["--scale", "tiny", "--parts", "cartpole", "--budget-s", "-1", "--out", str(skipped)]
    )
    assert "time budget" in json.loads(skipped.read_text())["parts"]["cartpole"]["skipped"]
