"""Preprocessing against transformers' CLIPImageProcessor and hand-computed resize / crop geometry; the CLIP
tokenizer built from the shipped merges file against known OpenAI CLIP ids.
Run: pytest tests/rewards/test_reward_preprocess.py
"""

from __future__ import annotations

import pytest
import torch

from rewards.clip_tokenizer import clip_tokenizer
from rewards.preprocess import CLIP_MEAN, CLIP_STD, pil_resize_crop, short_side_size, tensor_resize_crop


@pytest.mark.parametrize("hw", [(30, 40), (40, 30), (24, 24), (17, 50)])
def test_pil_resize_crop_matches_transformers_clip_image_processor(hw):
    from transformers import CLIPImageProcessor

    images = torch.rand(2, 3, *hw, generator=torch.Generator().manual_seed(0))
    processor = CLIPImageProcessor(size={"shortest_edge": 24}, crop_size={"height": 24, "width": 24})
    u8 = [(img * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy() for img in images]
    expected = torch.as_tensor(processor(images=u8, return_tensors="pt").pixel_values)
    torch.testing.assert_close(pil_resize_crop(images, size=24, crop_rounding="floor"), expected, atol=1e-5, rtol=0)


def test_short_side_size_truncates_the_long_side():
    # 224 * 40 / 30 = 298.67 -> 298 (torchvision and transformers both use int())
    assert short_side_size(30, 40, 224) == (224, 298)
    assert short_side_size(50, 17, 24) == (70, 24)  # 24 * 50 / 17 = 70.59


def test_tensor_resize_crop_of_a_constant_image_is_the_normalised_constant():
    images = torch.full((1, 3, 20, 30), 0.6)
    out = tensor_resize_crop(images, size=16, mode="bicubic", quantize_first=True)
    q = round(0.6 * 255) / 255  # 153 / 255
    expected = ((torch.full((3,), q) - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)).view(1, 3, 1, 1)
    assert out.shape == (1, 3, 16, 16)
    torch.testing.assert_close(out, expected.expand(1, 3, 16, 16), atol=1e-5, rtol=0)


def test_tensor_center_crop_rounds_half_offsets_like_torchvision():
    # 16 x 21 at size 16: no resize (short side already 16); offset round((21 - 16) / 2) = round(2.5) = 2
    # (Python's round-half-even, as torchvision's int(round(...)))
    images = torch.arange(21.0).view(1, 1, 1, 21).expand(1, 3, 16, 21) / 20
    out = tensor_resize_crop(images, size=16, mode="bilinear", quantize_first=False)
    first_column = out[0, 0, 0, 0] * CLIP_STD[0] + CLIP_MEAN[0]
    torch.testing.assert_close(first_column, torch.tensor(2 / 20), atol=1e-6, rtol=0)


def test_shipped_bpe_gives_openai_clip_ids():
    # OpenAI CLIP / open_clip ids, e.g. open_clip.tokenize("a photo of a cat")[0][:7]
    tok = clip_tokenizer()
    assert len(tok) == 49408
    ids = tok(["a photo of a cat"], padding="max_length", max_length=77).input_ids[0]
    assert ids[:7] == [49406, 320, 1125, 539, 320, 2368, 49407] and len(ids) == 77


def test_missing_tokenizer_folder_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="No CLIP tokenizer"):
        clip_tokenizer(tmp_path)
