"""Experiment trackers through accelerate: names checked, missing packages named, sample grids logged as images.
Run: python -m pytest tests/runtime/test_trackers.py -q"""

import importlib.util

import numpy as np
import pytest
from PIL import Image

from flowrl.runtime.metrics import MetricsLogger
from flowrl.runtime.trackers import check_trackers


def test_unknown_and_missing_trackers_are_clear_errors():
    with pytest.raises(ValueError, match=r"Unknown tracker\(s\) \['tensorbord'\]"):
        check_trackers(["tensorbord"])
    missing = [n for n in ("wandb", "trackio") if importlib.util.find_spec(n) is None]
    if missing:
        with pytest.raises(ImportError, match=f"pip install '{missing[0]}'"):
            check_trackers([missing[0]])


def test_tensorboard_gets_the_sample_grid_as_an_image(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    grid = np.zeros((8, 12, 3), dtype=np.uint8)  # (H, W, 3)
    grid[:, :6, 0] = 255
    Image.fromarray(grid).save(tmp_path / "grid.png")
    with MetricsLogger(tmp_path, report_to=["tensorboard"]) as logger:
        logger.log(2, {"reward": 0.5})
        logger.log_image(2, "eval/samples", tmp_path / "grid.png")
    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0})
    acc.Reload()
    (event,) = acc.Images("eval/samples")
    assert (event.step, event.width, event.height) == (2, 12, 8)
    assert [e.value for e in acc.Scalars("reward")] == [0.5]


def test_no_tracker_writes_only_the_jsonl(tmp_path):
    with MetricsLogger(tmp_path, report_to=[]) as logger:
        logger.log(0, {"reward": 0.5})
        logger.log_image(0, "eval/samples", tmp_path / "absent.png")  # nothing to send it to: not even read
    assert not (tmp_path / "tb").exists()
