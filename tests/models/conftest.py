"""Session fixtures: one tiny SD3 and one tiny FLUX pipeline folder, built once (tests/models/tiny_pipelines.py)."""

from pathlib import Path

import pytest
from tiny_pipelines import build_flux, build_sd3


@pytest.fixture(scope="session")
def sd3_folder(tmp_path_factory) -> Path:
    return build_sd3(tmp_path_factory.mktemp("tiny_sd3"))


@pytest.fixture(scope="session")
def flux_folder(tmp_path_factory) -> Path:
    return build_flux(tmp_path_factory.mktemp("tiny_flux"))
