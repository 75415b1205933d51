"""The image preprocessing of each original scorer, reproduced without torchvision.

Three pipelines occur in the originals (all normalise with OpenAI CLIP's mean and std):

* `pil_resize_crop` - PIL bicubic resize of the 8-bit image so its short side is `size`, then a centre crop. This is
  transformers' `CLIPImageProcessor` (PickScore's processor, the LAION aesthetic predictor as DDPO / Flow-GRPO call
  it: crop offset ``(H - size) // 2``) and torchvision ``Resize(size, BICUBIC), CenterCrop(size)`` on PIL images
  (ImageReward: crop offset ``round((H - size) / 2)``).
* `tensor_resize_crop` - torchvision ``Resize`` on a float tensor (``F.interpolate`` with antialias), then a centre
  crop ``round((H - size) / 2)``: HPSv2's ``ToTensor -> Resize(bicubic) -> CenterCrop`` on the 8-bit image, and
  Flow-GRPO's CLIPScore (bilinear, directly on the float image).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from rewards.images import quantize, to_uint8

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def short_side_size(height: int, width: int, size: int) -> tuple[int, int]:
    """`(h, w)` with the short side equal to `size` and the long side ``int(size * long / short)`` (torchvision and
    transformers both truncate).

    Example:
        >>> short_side_size(30, 40, 224), short_side_size(64, 64, 224)
        ((224, 298), (224, 224))
    """
    if height <= width:
        return size, int(size * width / height)
    return int(size * height / width), size


def normalize(pixels: torch.Tensor, *, mean=CLIP_MEAN, std=CLIP_STD) -> torch.Tensor:
    """``(x - mean) / std`` per channel of a `(B, 3, H, W)` float tensor."""
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (pixels.float() - m) / s


def _crop_offsets(height: int, width: int, size: int, rounding: Literal["floor", "round"]) -> tuple[int, int]:
    if rounding == "floor":
        return (height - size) // 2, (width - size) // 2
    return int(round((height - size) / 2.0)), int(round((width - size) / 2.0))


def pil_resize_crop(
    images: torch.Tensor, *, size: int, crop_rounding: Literal["floor", "round"] = "floor"
) -> torch.Tensor:
    """8-bit PIL bicubic short-side resize to `size`, centre crop `size` x `size`, ``/ 255``, CLIP normalisation.

    Args:
        images (`torch.Tensor`): `(B, 3, H, W)` float in [0, 1].
        size (`int`): the model's input side.
        crop_rounding (`str`, defaults to "floor"): "floor" (transformers) or "round" (torchvision) crop offsets.

    Returns:
        `torch.Tensor`: `(B, 3, size, size)` float32.
    """
    out = []
    for array in to_uint8(images):  # (H, W, 3)
        h, w = array.shape[:2]
        nh, nw = short_side_size(h, w, size)
        resized = np.asarray(Image.fromarray(array).resize((nw, nh), resample=Image.Resampling.BICUBIC))
        top, left = _crop_offsets(nh, nw, size, crop_rounding)
        crop = resized[top : top + size, left : left + size]  # (size, size, 3)
        out.append(torch.from_numpy(crop.copy()).permute(2, 0, 1).float() / 255.0)
    return normalize(torch.stack(out))  # (B, 3, size, size)


def tensor_resize_crop(
    images: torch.Tensor, *, size: int, mode: Literal["bicubic", "bilinear"], quantize_first: bool
) -> torch.Tensor:
    """torchvision-style ``Resize(size, mode, antialias=True) -> CenterCrop(size) -> Normalize`` on float tensors.

    Args:
        images (`torch.Tensor`): `(B, 3, H, W)` float in [0, 1].
        size (`int`): the model's input side.
        mode (`str`): "bicubic" (HPSv2) or "bilinear" (Flow-GRPO CLIPScore, torchvision's default).
        quantize_first (`bool`): round to 8 bits first (the original received a PIL image: HPSv2) or not
            (Flow-GRPO's CLIPScore receives the float decoder output).

    Returns:
        `torch.Tensor`: `(B, 3, size, size)` float32.
    """
    x = quantize(images) if quantize_first else images.detach().float().cpu()  # (B, 3, H, W)
    h, w = x.shape[-2:]
    nh, nw = short_side_size(h, w, size)
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode=mode, align_corners=False, antialias=True)
    top, left = _crop_offsets(nh, nw, size, "round")
    return normalize(x[..., top : top + size, left : left + size])  # (B, 3, size, size)
