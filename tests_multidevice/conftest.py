"""Multi-device tests: 4 fake CPU devices, so they run in their own pytest invocation
(the device count is fixed when JAX starts):

    JAX_NUM_CPU_DEVICES=4 pytest -n 2 tests_multidevice
"""

from __future__ import annotations

import os

os.environ.setdefault("JAX_NUM_CPU_DEVICES", "4")
os.environ.setdefault("PUREJAXPPO_COMPILE_CACHE", "0")

import jax
import pytest
from helpers import SMALL

from purejaxppo import Config


@pytest.fixture(scope="session")
def devices() -> list:
    found = jax.devices()
    if len(found) < 4:
        pytest.fail(
            f"these tests need 4 devices, JAX sees {len(found)}: run them in their own "
            "invocation with JAX_NUM_CPU_DEVICES=4 set before JAX starts"
        )
    return found[:4]


@pytest.fixture(scope="session")
def small_config() -> Config:
    return Config(**SMALL)
