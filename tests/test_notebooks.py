"""The notebooks run end to end at a small budget (PUREJAXPPO_NOTEBOOK_SMALL=1)."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.parametrize(
    "name",
    [
        "quickstart.ipynb",
        "sweep.ipynb",
        "pbt.ipynb",
        "brax_continuous.ipynb",
        "ablations.ipynb",
        "multi_device.ipynb",
        "spaces.ipynb",
        "memory.ipynb",
    ],
)
def test_notebook_runs_small(name, monkeypatch):
    monkeypatch.setenv("PUREJAXPPO_NOTEBOOK_SMALL", "1")  # the kernel inherits os.environ
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert not errors
    # Every code cell ran (an empty execution_count would mean it was skipped).
    assert all(c.get("execution_count") for c in nb.cells if c.cell_type == "code")
