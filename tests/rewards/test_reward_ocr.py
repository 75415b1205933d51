"""The OCR reward on text rendered with Pillow, read by rapidocr's bundled models (offline).
Run: pytest tests/rewards/test_reward_ocr.py (needs the `ocr` extra; skipped without rapidocr).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

pytest.importorskip("rapidocr")

from rewards import load_reward  # noqa: E402


def render(text: str, *, size=(256, 64)) -> torch.Tensor:
    """`(3, H, W)` black text on white, Pillow's bundled font at 28 px."""
    img = Image.new("RGB", size, "white")
    ImageDraw.Draw(img).text((8, 14), text, fill="black", font=ImageFont.load_default(size=28))
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 255


@pytest.fixture(scope="module")
def ocr():
    return load_reward("ocr")


def test_rendered_text_scores_one_blank_scores_zero(ocr):
    images = torch.stack([render("Hello GRPO"), render(""), render("WORLD")])
    prompts = ['a sign that says "hello grpo"', 'a sign that says "hello"', 'a poster reading "hello"']
    out = ocr(images, prompts, None)
    assert out.shape == (3,) and out.dtype == torch.float32
    assert out[0] == 1.0  # case and spaces are ignored
    assert out[1] == 0.0  # nothing read: distance capped at len("hello")
    # "WORLD" vs "hello": lower-cased "world" shares only the 'l' at position 3, distance 4 -> 1 - 4/5
    assert out[2] == pytest.approx(0.2)


def test_partial_rendering_gets_partial_credit(ocr):
    out = ocr(render("FLOWR").unsqueeze(0), ['the word "flowrl"'])
    assert out.tolist() == [pytest.approx(1 - 1 / 6)]  # one missing character of six


def test_prompt_without_quotes_is_an_error(ocr):
    with pytest.raises(ValueError, match="double quotes"):
        ocr(render("x").unsqueeze(0), ["no quotes here"])
