"""Session fixtures: tiny SD3 / FLUX pipeline folders and one trained run on each (tests/eval/real_runs.py)."""

from pathlib import Path

import pytest
from real_runs import tiny_pipelines, train_run


@pytest.fixture(scope="session")
def sd3_dir(tmp_path_factory) -> Path:
    return tiny_pipelines().build_sd3(tmp_path_factory.mktemp("tiny_sd3"))


@pytest.fixture(scope="session")
def flux_dir(tmp_path_factory) -> Path:
    return tiny_pipelines().build_flux(tmp_path_factory.mktemp("tiny_flux"))


@pytest.fixture(scope="session")
def sd3_lora_run(sd3_dir, tmp_path_factory) -> Path:
    """SD3, LoRA rank 4, EMA on: the run folder holds lora/ and a checkpoint with ema.safetensors."""
    return train_run("sd3", sd3_dir, tmp_path_factory.mktemp("runs"), lora_rank=4, name="sd3_lora")


@pytest.fixture(scope="session")
def flux_full_run(flux_dir, tmp_path_factory) -> Path:
    """FLUX, full fine-tuning, EMA on: the run folder holds final/transformer/."""
    return train_run("flux", flux_dir, tmp_path_factory.mktemp("runs"), lora_rank=0, name="flux_full")
