"""Tiny random ShapeWorld models and run folders for the demo tests; a tiny SD3 pipeline and a real LoRA run on it
(tests/eval/real_runs.py)."""

from pathlib import Path

import pytest
import torch

from flowrl.shapes.model import build_shapeworld, save_shapeworld
from tests.file_module import load_file_module

TINY = {
    "num_layers": 1,
    "num_attention_heads": 2,
    "attention_head_dim": 8,
    "text_hidden_size": 16,
    "text_layers": 1,
    "text_heads": 2,
}


def real_runs():
    """tests/eval/real_runs.py as a module."""
    return load_file_module(Path(__file__).resolve().parents[1] / "eval" / "real_runs.py", "real_runs_for_demo")


@pytest.fixture(scope="session")
def sd3_dir(tmp_path_factory) -> Path:
    return real_runs().tiny_pipelines().build_sd3(tmp_path_factory.mktemp("tiny_sd3"))


@pytest.fixture(scope="session")
def sd3_lora_run(sd3_dir, tmp_path_factory) -> Path:
    """One iteration of sd35m_flow_grpo_pickscore at test size, LoRA rank 4, EMA on."""
    return real_runs().train_run("sd3", sd3_dir, tmp_path_factory.mktemp("runs"), lora_rank=4, name="sd3_lora")


@pytest.fixture(scope="session")
def flux_full_run(tmp_path_factory) -> Path:
    """One iteration of flux_mixgrpo at test size, full fine-tuning, EMA on."""
    rr = real_runs()
    flux = rr.tiny_pipelines().build_flux(tmp_path_factory.mktemp("tiny_flux"))
    return rr.train_run("flux", flux, tmp_path_factory.mktemp("runs"), lora_rank=0, name="flux_full")


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
    from flowrl.runtime.metrics import MetricsLogger, read_metrics
    from flowrl.runtime.plots import plot_curves, save_image_grid
    from flowrl.shapes.model import load_shapeworld

    run = tmp_path_factory.mktemp("runs") / "tiny-run"
    from demo_runs import write_run_config

    write_run_config(run, tiny_model_dir)
    model = load_shapeworld(tiny_model_dir)
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
