"""Shared pytest setup: every test starts from a fixed torch seed; the hub is never contacted."""

import os

# MKL picks kernels by memory alignment unless told not to; the flowrl CLIs set this for bit-exact runs, and a test
# process must set it before torch (and MKL) load, or in-process resumes differ in the last bits.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from tests.file_module import load_file_module  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def load_script():
    """``load_script("bench_gpu")`` imports ``scripts/bench_gpu.py`` as a module (the scripts are not a package)."""

    return lambda stem: load_file_module(SCRIPTS / f"{stem}.py", stem)
