"""`flowrl eval --model BASE --lora DIR`: samples equal the in-memory LoRA model's, at scale alpha / rank, with and
without adapter metadata in the file. Run: pytest tests/eval/test_eval_lora.py
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from flowrl.eval.cli import main
from flowrl.shapes.model import build_shapeworld, save_shapeworld
from flowrl.shapes.sampling import sample_images

PROMPTS = ["a red circle", "two blue squares"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from diffusers import StableDiffusion3Pipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from flowrl.models.shapeworld import LORA_TARGETS

    tmp = tmp_path_factory.mktemp("lora_eval")
    torch.manual_seed(0)
    model = build_shapeworld(num_layers=1, num_attention_heads=2, attention_head_dim=8, text_hidden_size=16,
                             text_layers=1, text_heads=2)  # fmt: skip
    save_shapeworld(model, tmp / "base")
    # rank 2, alpha 8: scale 4; random A and B so the adapter changes the samples
    model.transformer.add_adapter(
        LoraConfig(r=2, lora_alpha=8, init_lora_weights=False, target_modules=list(LORA_TARGETS))
    )
    layers = get_peft_model_state_dict(model.transformer)
    meta = model.transformer.peft_config["default"].to_dict()
    StableDiffusion3Pipeline.save_lora_weights(tmp / "with_meta", transformer_lora_layers=layers,
                                               transformer_lora_adapter_metadata=meta)  # fmt: skip
    StableDiffusion3Pipeline.save_lora_weights(tmp / "no_meta", transformer_lora_layers=layers)
    # expected: prompt i sampled with seed 5 + i, two samples, 2 Euler steps, by the in-memory LoRA model
    expected = [
        sample_images(model, [p] * 2, generator=torch.Generator().manual_seed(5 + i), num_inference_steps=2)
        for i, p in enumerate(PROMPTS)
    ]
    (tmp / "p.jsonl").write_text("\n".join(json.dumps({"prompt": p}) for p in PROMPTS) + "\n")
    return tmp, torch.cat(expected)


def _run(tmp, out, *extra):
    argv = ["--model", str(tmp / "base"), "--prompts", str(tmp / "p.jsonl"), "--samples-per-prompt", "2", "--steps",
            "2", "--seed", "5", "--rewards", "jpeg_compressibility", "--no-progress"]  # fmt: skip
    argv += ["--out", str(tmp / out), *extra]
    return main(argv)


def _images(folder, n):
    files = sorted((folder / "images").glob("*.png"))
    assert len(files) == n
    return torch.stack([torch.from_numpy(np.asarray(Image.open(f)).copy()).permute(2, 0, 1) for f in files])


def _u8(images):
    return (images * 255).round().clamp(0, 255).to(torch.uint8)


def test_lora_with_metadata_reproduces_the_in_memory_model(setup):
    tmp, expected = setup
    assert _run(tmp, "meta", "--lora", str(tmp / "with_meta")) == 0
    assert _run(tmp, "base_only") == 0
    got = _images(tmp / "meta", 4)
    assert (got.int() - _u8(expected).int()).abs().max() <= 1  # PNG rounding of the same float samples
    assert (_images(tmp / "base_only", 4).int() - got.int()).abs().max() > 10  # the adapter matters


def test_lora_without_metadata_needs_and_uses_alpha(setup, capsys):
    tmp, expected = setup
    assert _run(tmp, "x", "--lora", str(tmp / "no_meta")) == 2
    assert "--lora-alpha" in capsys.readouterr().err
    assert _run(tmp, "alpha", "--lora", str(tmp / "no_meta"), "--lora-alpha", "8") == 0
    assert (_images(tmp / "alpha", 4).int() - _u8(expected).int()).abs().max() <= 1
