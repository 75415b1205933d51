"""metrics.jsonl + TensorBoard logging. Run: pytest tests/train/test_metrics.py -q"""

import json
import math

import pytest
import torch

from flowrl.runtime.metrics import MetricsLogger, read_metrics


def test_jsonl_append_and_conversion(tmp_path):
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        row = logger.log(0, {"loss": torch.tensor(0.25), "n": 3, "ok": torch.tensor(True), "lr": 1e-4})
        logger.log(1, {"loss": 0.5})
        logger.log(1, {"eval_reward": 0.75})  # a second record at the same step is allowed
    assert row == {"loss": 0.25, "n": 3, "ok": 1, "lr": 1e-4}
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [0, 1, 1]
    assert records[0]["loss"] == 0.25 and records[2]["eval_reward"] == 0.75
    assert all(isinstance(r["wall_time"], float) for r in records)


def test_non_finite_becomes_null(tmp_path):
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        row = logger.log(0, {"a": float("nan"), "b": torch.tensor(float("inf")), "c": 1.0})
    assert row == {"a": None, "b": None, "c": 1.0}
    line = (tmp_path / "metrics.jsonl").read_text().splitlines()[0]
    assert '"a": null' in line and '"b": null' in line
    json.loads(line)  # strict JSON: no NaN/Infinity tokens


def test_each_line_is_flushed_before_close(tmp_path):
    logger = MetricsLogger(tmp_path, tensorboard=False)
    logger.log(0, {"x": 1.0})
    assert [(r["step"], r["x"]) for r in read_metrics(tmp_path)] == [(0, 1.0)]  # readable while still open
    logger.close()


def test_resume_drops_lines_at_and_after_resume_step(tmp_path):
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        for step in range(6):
            logger.log(step, {"x": float(step)})
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"step": 6, "x": 6.')  # torn line of a crashed write
    with pytest.raises(FileExistsError, match="resume_step"):
        MetricsLogger(tmp_path, tensorboard=False)
    with MetricsLogger(tmp_path, tensorboard=False, resume_step=4) as logger:
        with pytest.raises(ValueError, match="must not decrease"):
            logger.log(3, {"x": 3.0})
        logger.log(4, {"x": 40.0})
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [(r["step"], r["x"]) for r in records] == [(0, 0.0), (1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0)]


def test_bad_values_are_rejected(tmp_path):
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        with pytest.raises(ValueError, match="shape"):
            logger.log(0, {"v": torch.ones(3)})
        with pytest.raises(TypeError, match="'s'"):
            logger.log(0, {"s": "text"})
        with pytest.raises(ValueError, match="reserved"):
            logger.log(0, {"step": 1})


def test_tensorboard_scalars_skip_non_finite(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with MetricsLogger(tmp_path) as logger:
        logger.log(0, {"reward": torch.tensor(0.5), "kl": float("nan")})
        logger.log(1, {"reward": 0.75, "kl": 0.1})
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("reward")] == [(0, 0.5), (1, 0.75)]
    kl = acc.Scalars("kl")
    assert [e.step for e in kl] == [1] and math.isclose(kl[0].value, 0.1, rel_tol=1e-6)
