"""The run folder: one per training run, created once and reopened on resume (docs/architecture.md, Runs).

Layout written by the `flowrl.train` utilities::

    <root>/<name>/
        config.yaml          resolved config (`write_config`)
        metrics.jsonl        one JSON object per `MetricsLogger.log` call
        tb/                  TensorBoard event files
        checkpoints/step_000100/ ...   (`save_checkpoint`)
        *.png                sample grids and curve plots

Every file is written atomically (`atomic_write_bytes`: temp file in the same folder, fsync, `os.replace`), so a crash
leaves either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path


def create_run_dir(root: str | Path, name: str | None = None, *, resume: bool = False) -> Path:
    """Create (or reopen, when resuming) the folder of one training run.

    Args:
        root (`str` or `Path`):
            Parent folder of all runs, e.g. `runs/`. Created if missing.
        name (`str`, *optional*, defaults to `None`):
            Folder name under `root`. `None` picks a fresh timestamped name `YYYYmmdd-HHMMSS` (UTC), with a `-2`,
            `-3`, ... suffix when that folder already exists, so two runs started in the same second never collide.
        resume (`bool`, defaults to `False`):
            Reopen the existing folder `root/name` of an interrupted run instead of creating a new one.

    Returns:
        `Path`: the run folder, existing and ready for writing.

    Raises:
        FileExistsError: `root/name` exists and is not empty while `resume=False` (an earlier run would be
            overwritten).
        FileNotFoundError: `resume=True` but `root/name` does not exist.
        ValueError: `resume=True` without a `name`.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if resume:
        if name is None:
            raise ValueError("create_run_dir(resume=True) needs the `name` of the run folder to reopen; got None.")
        run_dir = root / name
        if not run_dir.is_dir():
            raise FileNotFoundError(
                f"Cannot resume: no run folder at {run_dir}. Check `root`/`name`, or pass resume=False to start a "
                "new run."
            )
        return run_dir
    if name is not None:
        run_dir = root / name
        if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
            raise FileExistsError(
                f"Run folder {run_dir} already exists and is not empty; refusing to overwrite it. Pass resume=True to "
                "continue that run, choose another name, or pass name=None for a fresh timestamped folder."
            )
        run_dir.mkdir(exist_ok=True)
        return run_dir
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    for i in range(1, 10_000):
        run_dir = root / (stamp if i == 1 else f"{stamp}-{i}")
        try:
            run_dir.mkdir()  # atomic: fails if another process created it first
        except FileExistsError:
            continue
        return run_dir
    raise FileExistsError(f"Could not find a free run folder name {stamp}-N under {root} after 9999 tries.")


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically: temp file in the same folder, flush + fsync, then `os.replace`.

    Readers see either the previous content of `path` or all of `data`, even if the process dies mid-write.

    Args:
        path (`str` or `Path`): Destination file; its parent folder must exist.
        data (`bytes`): The full new content.

    Returns:
        `Path`: `path`.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_torch_save(obj: object, path: str | Path) -> Path:
    """`torch.save(obj)` to `path` atomically (`atomic_write_bytes`): a crash leaves the previous file whole."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def write_config(run_dir: str | Path, yaml_text: str) -> Path:
    """Write the resolved config as `run_dir/config.yaml` (atomically; replaces an earlier one on resume).

    Args:
        run_dir (`str` or `Path`): The run folder from `create_run_dir`.
        yaml_text (`str`): The resolved config, already serialized (e.g. by `flowrl.config`).

    Returns:
        `Path`: the written `config.yaml`.
    """
    return atomic_write_bytes(Path(run_dir) / "config.yaml", yaml_text.encode("utf-8"))
