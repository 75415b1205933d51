"""Tiny random ShapeWorld models and run folders for the demo tests."""

from pathlib import Path

import pytest
import torch

from flowrl.shapes.model import build_shapeworld, save_shapeworld

TINY = {
    "num_layers": 1,
    "num_attention_heads": 2,
    "attention_head_dim": 8,
    "text_hidden_size": 16,
    "text_layers": 1,
    "text_heads": 2,
}


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A saved tiny random base model (2 sampling steps by default, to keep the tests fast)."""
    folder = tmp_path_factory.mktemp("base") / "shapeworld"
    torch.manual_seed(0)
    save_shapeworld(build_shapeworld(**TINY, num_inference_steps=2), folder)
    return folder


@pytest.fixture(scope="session")
def tiny_run_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """A `flowrl train`-like run folder: `final/` with perturbed weights, metrics, curves and one sample grid."""
    from flowrl.demo.models import load_base
    from flowrl.train.metrics import MetricsLogger, read_metrics
    from flowrl.train.plots import plot_curves, save_image_grid

    run = tmp_path_factory.mktemp("runs") / "tiny-run"
    model = load_base(tiny_model_dir)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.transformer.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator))
    save_shapeworld(model, run / "final")
    with MetricsLogger(run, tensorboard=False) as logger:
        for step in range(3):
            logger.log(step, {"reward_mean": 0.1 * step, "eval/strict/overall": 0.2 + 0.1 * step})
    plot_curves(read_metrics(run / "metrics.jsonl"), ["reward_mean", "eval/strict/overall"], run / "curves.png")
    (run / "samples").mkdir()
    save_image_grid(torch.rand(2, 3, 32, 32), run / "samples" / "eval_00002.png", nrow=2, captions=["a", "b"])
    return run
