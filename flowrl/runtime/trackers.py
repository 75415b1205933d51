"""Experiment trackers through accelerate (`accelerate.tracking`): TensorBoard, Weights & Biases, Trackio.

`open_trackers` starts the trackers a run reports to (``run.report_to``); `MetricsLogger` sends every metrics line
to them and `log_image` the sample grid of each evaluation. TensorBoard writes under ``<run>/tb``; on resume its
writer purges the events from the resume step on (what the abandoned continuation logged). W&B and Trackio are
optional packages: naming one that is not installed is an error that says how to install it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

TRACKERS = ("tensorboard", "wandb", "trackio")
TB_DIR = "tb"
PROJECT = "flowrl"  # the W&B / Trackio project
_PACKAGES = {"tensorboard": "tensorboard>=2.21,<3", "wandb": "wandb", "trackio": "trackio"}


def check_trackers(names: list[str]) -> None:
    """Raise on an unknown tracker name or one whose package is not installed."""
    unknown = [n for n in names if n not in TRACKERS]
    if unknown:
        raise ValueError(f"Unknown tracker(s) {unknown} in run.report_to. Valid: {list(TRACKERS)}.")
    missing = [n for n in names if importlib.util.find_spec(n) is None]
    if missing:
        pip = " ".join(repr(_PACKAGES[n]) for n in missing)
        raise ImportError(
            f"run.report_to names {missing}, which are not installed: `pip install {pip}`, or leave them out of "
            "run.report_to (run.report_to=[] logs only metrics.jsonl)."
        )


def open_trackers(
    names: list[str], run_dir: str | Path, *, config: dict | None = None, resume_step: int | None = None
) -> list:
    """Started accelerate trackers for `names` (`TRACKERS`); `config` (flat: str, number, bool) is stored as the
    run's hyper-parameters by W&B and Trackio."""
    check_trackers(names)
    from accelerate.tracking import TensorBoardTracker, TrackioTracker, WandBTracker

    run_dir = Path(run_dir)
    trackers = []
    for name in names:
        if name == "tensorboard":
            tracker = TensorBoardTracker(TB_DIR, run_dir, purge_step=resume_step)
        elif name == "wandb":
            tracker = WandBTracker(PROJECT, name=run_dir.name, dir=str(run_dir), resume="allow", id=run_dir.name)
        else:
            tracker = TrackioTracker(PROJECT, name=run_dir.name, resume="allow")
        tracker.start()
        if config and name != "tensorboard":  # TensorBoard keeps the config beside it (config.yaml)
            tracker.store_init_configuration(config)
        trackers.append(tracker)
    return trackers


def log_scalars(trackers: list, values: dict[str, float], step: int, *, walltime: float) -> None:
    """Finite scalars to every tracker."""
    for tracker in trackers:
        if tracker.name == "tensorboard":
            tracker.log(values, step=step, walltime=walltime)
        else:
            tracker.log(values, step=step)


def log_image(trackers: list, key: str, image: np.ndarray, step: int) -> None:
    """One `(H, W, 3)` uint8 image (a sample grid) to every tracker, under `key` at `step`."""
    for tracker in trackers:
        if tracker.name == "tensorboard":
            tracker.log_images({key: image[None]}, step=step, dataformats="NHWC")
        elif tracker.name == "wandb":
            tracker.log_images({key: [image]}, step=step)
        else:
            import trackio

            tracker.log({key: trackio.Image(image)}, step=step)
