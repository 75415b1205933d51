"""Scalar metrics of a run: one JSON line per `MetricsLogger.log` call in `metrics.jsonl`, mirrored to the run's
experiment trackers (TensorBoard by default, W&B, Trackio: `flowrl.runtime.trackers`).

Library code keeps metrics as tensors (style rule 3.6.10: no `.item()` in math); `MetricsLogger.log` is the one place
where they are brought to the host. Each line is `{"step": int, "wall_time": float, <key>: number | null, ...}`;
non-finite values become `null` (JSON has no NaN) and are left out of TensorBoard.
"""

from __future__ import annotations

import json
import math
import numbers
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO

import numpy as np
import torch

from flowrl.runtime.run_dir import atomic_write_bytes
from flowrl.runtime.trackers import log_image, log_scalars, open_trackers

METRICS_FILE = "metrics.jsonl"
_RESERVED = ("step", "wall_time")


def read_metrics(path: str | Path) -> list[dict]:
    """Read a `metrics.jsonl` file into a list of dicts, one per logged line, in file order.

    A torn last line (the process died while writing it, so it has no trailing newline) is dropped; a malformed
    line anywhere else is an error.

    Args:
        path (`str` or `Path`): The `metrics.jsonl` file (or a run folder, which means `run_folder/metrics.jsonl`).

    Returns:
        `list[dict]`: the records; missing or non-finite values are `None`.
    """
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i == len(lines) - 1:  # no newline after it: torn final write
                break
            raise ValueError(f"{path}:{i + 1} is not valid JSON ({e}); the metrics file is corrupt.") from e
    return records


def print_and_append(path: str | Path, record: dict) -> None:
    """Print `record` as one JSON line and append it to the JSONL file `path` (a script's progress log)."""
    line = json.dumps(record)
    print(line, flush=True)
    with Path(path).open("a") as handle:
        handle.write(line + "\n")


def _to_number(key: str, value: object) -> float | int | None:
    # The single host sync of the training loop happens here, through `.item()`.
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"Metric {key!r} is a tensor of shape {tuple(value.shape)}; log one number per key "
                "(reduce it first, e.g. `.mean()`)."
            )
        value = value.detach().item()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else None
    raise TypeError(
        f"Metric {key!r} has type {type(value).__name__}; expected int, float, bool or a 1-element tensor."
    )


class MetricsLogger:
    """Append-only scalar logger for one run folder: `metrics.jsonl` plus the trackers (TensorBoard: `run_dir/tb/`).

    Args:
        run_dir (`str` or `Path`):
            The run folder (from `create_run_dir`).
        tensorboard (`bool`, defaults to `True`):
            Also write TensorBoard scalars (needs the `tensorboard` package); ignored when `report_to` is given.
        report_to (`list[str]`, *optional*):
            Trackers of `flowrl.runtime.trackers.TRACKERS` (``run.report_to``); None = TensorBoard per `tensorboard`.
        config (`dict`, *optional*):
            Flat hyper-parameters stored by W&B and Trackio.
        resume_step (`int`, *optional*, defaults to `None`):
            When resuming from the checkpoint of step `resume_step`, drop every existing line with
            `step >= resume_step` (those steps are about to be recomputed) and tell TensorBoard to purge its events
            from that step on, so curves have no duplicates. `None` starts a fresh log, which must not exist yet.

    Raises:
        FileExistsError: `resume_step=None` but `metrics.jsonl` already holds lines.
        ImportError: a tracker's package (tensorboard, wandb, trackio) is not installed.

    Example::

        logger = MetricsLogger(run_dir, resume_step=start_step or None)
        for step in range(start_step, num_steps):
            row = logger.log(step, {"loss": loss, "reward_mean": rewards.mean()})
            bar.set_postfix(reward=row["reward_mean"])
        logger.close()
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        tensorboard: bool = True,
        resume_step: int | None = None,
        report_to: list[str] | None = None,
        config: dict | None = None,
    ) -> None:
        self.path = Path(run_dir) / METRICS_FILE
        if resume_step is None:
            if self.path.exists() and self.path.stat().st_size > 0:
                raise FileExistsError(
                    f"{self.path} already holds metrics; pass resume_step=<checkpoint step> to continue that run "
                    "(lines from that step on are dropped), or log into a new run folder."
                )
        elif self.path.exists():
            kept = [r for r in read_metrics(self.path) if r["step"] < resume_step]
            atomic_write_bytes(self.path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in kept).encode())
        self._last_step = 0 if resume_step is None else resume_step  # lowest step allowed next
        self._file: IO[str] | None = self.path.open("a", encoding="utf-8")
        names = report_to if report_to is not None else (["tensorboard"] if tensorboard else [])
        self.trackers = open_trackers(names, run_dir, config=config, resume_step=resume_step)

    def log(self, step: int, metrics: Mapping[str, float | int | torch.Tensor]) -> dict[str, float | int | None]:
        """Append one line `{"step": step, "wall_time": ..., **metrics}` and the TensorBoard scalars of `step`.

        Several calls may share a step (e.g. train and eval metrics); steps must not decrease.

        Args:
            step (`int`): The optimizer step the metrics belong to.
            metrics (`Mapping[str, float | int | torch.Tensor]`): Scalars; tensors must hold one element and are
                moved to the host here (one `.item()` each). Non-finite values are logged as `null`.

        Returns:
            `dict[str, float | int | None]`: the metrics as Python numbers (feed these to the progress bar instead of
            syncing again).
        """
        if self._file is None:
            raise RuntimeError(f"MetricsLogger for {self.path} is closed; create a new one to log more.")
        if step < self._last_step:
            raise ValueError(
                f"Metrics step {step} is before step {self._last_step} (the last logged or the resume step); "
                "steps must not decrease."
            )
        bad = [k for k in metrics if k in _RESERVED]
        if bad:
            raise ValueError(f"Metric key {bad[0]!r} is reserved by the logger (reserved: {', '.join(_RESERVED)}).")
        values = {k: _to_number(k, v) for k, v in metrics.items()}
        record = {"step": int(step), "wall_time": time.time(), **values}
        self._file.write(json.dumps(record, allow_nan=False) + "\n")
        self._file.flush()
        finite = {k: v for k, v in values.items() if v is not None}
        log_scalars(self.trackers, finite, step, walltime=record["wall_time"])
        self._last_step = step
        return values

    def log_image(self, step: int, key: str, path: str | Path) -> None:
        """The PNG at `path` (a sample grid) to every tracker, as `key` at `step`."""
        if self.trackers:
            from PIL import Image

            log_image(self.trackers, key, np.asarray(Image.open(path).convert("RGB")), step)

    def close(self) -> None:
        """Flush and close `metrics.jsonl` and the TensorBoard writer (idempotent)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        for tracker in self.trackers:
            tracker.finish()
        self.trackers = []

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
