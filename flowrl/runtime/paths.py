"""Where a run's inputs are: a path given relative to the current directory or, failing that, to the flowrl
repository (the shipped models and task files live there)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def resolve_path(path: str | Path, *, what: str, folder: bool = False, hint: str = "") -> Path:
    """`path` if it exists, else `REPO_ROOT / path`; `folder` requires a directory.

    Raises:
        FileNotFoundError: neither exists; names `what`, both places looked in and `hint` (how to fix).
    """
    for candidate in (Path(path), REPO_ROOT / path):
        if candidate.is_dir() if folder else candidate.exists():
            return candidate
    raise FileNotFoundError(f"The {what} {str(path)!r} was not found (looked in {Path.cwd()} and {REPO_ROOT}).{hint}")
