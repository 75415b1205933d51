"""scripts/pretrain_shapes.py: learning-rate schedule and bit-exact resume of a tiny CPU run."""

import argparse
import math
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def script(load_script):
    return load_script("pretrain_shapes")


def test_lr_schedule_hand_values(script):
    args = argparse.Namespace(lr=1.0, warmup_steps=10, max_steps=110, min_lr_ratio=0.1, max_minutes=0.0)
    assert script.lr_at(0, args, 0.0) == pytest.approx(0.1)  # (0 + 1) / 10
    assert script.lr_at(9, args, 0.0) == pytest.approx(1.0)
    # Half-way through the 100 decay steps: 0.1 + 0.9 * 0.5 * (1 + cos(pi / 2)) = 0.55.
    assert script.lr_at(60, args, 0.0) == pytest.approx(0.55)
    assert script.lr_at(110, args, 0.0) == pytest.approx(0.1)
    # A time budget that is 3/4 spent decays further than the step count (25%) says.
    late = script.lr_at(35, argparse.Namespace(**{**vars(args), "max_minutes": 4.0}), 180.0)
    assert late == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(0.75 * math.pi)))


TINY = [
    "--num-layers",
    "1",
    "--num-heads",
    "2",
    "--head-dim",
    "16",
    "--text-hidden-size",
    "32",
    "--batch-size",
    "4",
    "--warmup-steps",
    "10",
    "--quick-eval-minutes",
    "0",
    "--eval-per-family",
    "1",
    "--eval-seeds",
    "1",
    "--eval-steps",
    "1",
    "--log-every",
    "1",
]


def test_resume_is_bit_exact(script, tmp_path):
    from flowrl.shapes.model import build_vae

    torch.manual_seed(0)
    build_vae(block_out_channels=(16, 16, 16)).save_pretrained(tmp_path / "vae")  # a tiny frozen autoencoder
    tiny = [*TINY, "--vae", str(tmp_path / "vae")]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert script.main(["--out", str(straight), "--max-steps", "4", *tiny]) == 0
    assert script.main(["--out", str(resumed), "--max-steps", "2", *tiny]) == 0
    assert script.main(["--out", str(resumed), "--max-steps", "4", "--resume", *tiny]) == 0
    first = torch.load(straight / "last.pt", weights_only=True)
    second = torch.load(resumed / "last.pt", weights_only=True)
    assert first["step"] == second["step"] == 4
    for which in ("model", "ema"):
        for part in ("transformer", "text_encoder", "text_encoder_2"):
            for name, tensor in first[which][part].items():
                assert torch.equal(tensor, second[which][part][name]), (which, part, name)
    assert (straight / "model" / "transformer" / "diffusion_pytorch_model.safetensors").exists()
