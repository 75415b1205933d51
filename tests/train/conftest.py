"""Shared fixtures of the trainer tests."""

from pathlib import Path

import pytest
import torch

from flowrl.shapes.model import build_shapeworld, save_shapeworld


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random ShapeWorld model folder (seed 0): fast enough for full training runs in a test."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_shapeworld")
    save_shapeworld(
        build_shapeworld(
            num_layers=1, num_attention_heads=2, attention_head_dim=8, text_hidden_size=16, text_layers=1, text_heads=2
        ),
        folder,
    )
    return folder
