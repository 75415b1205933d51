"""Import a Python file of the repository (a script, a test helper) as a module: scripts/ and tests/ are no
packages."""

import importlib.util
from pathlib import Path


def load_file_module(path: Path, name: str):
    """The module of the file at `path`, imported under `name` (each caller its own name: a fresh module)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
