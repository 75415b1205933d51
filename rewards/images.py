"""Image conversions shared by the image rewards: validation, 8-bit quantisation, PIL images.

Every original scorer receives 8-bit images (PIL or uint8 arrays), so each reward first quantises the float
`(B, 3, H, W)` batch exactly as Flow-GRPO's `rewards.py` does: ``(images * 255).round().clamp(0, 255).to(uint8)``.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def check_images(name: str, images: torch.Tensor) -> torch.Tensor:
    """Validate an image batch and return it as float32 on the CPU.

    Args:
        name (`str`): the reward's name, for the error message.
        images (`torch.Tensor`): `(B, 3, H, W)` float in [0, 1].

    Returns:
        `torch.Tensor`: `(B, 3, H, W)` float32, detached, on the CPU.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(
            f"Reward {name!r} scores images of shape (B, 3, H, W) float in [0, 1]; got {got}. Convert PIL images "
            "with `torch.from_numpy(np.asarray(img)).permute(2, 0, 1).float() / 255` and stack them."
        )
    return images.detach().float().cpu()


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """`(B, 3, H, W)` float in [0, 1] -> `(B, H, W, 3)` uint8, rounding to nearest (Flow-GRPO's conversion).

    Example:
        >>> to_uint8(torch.tensor([0.0, 0.5, 1.0]).view(1, 3, 1, 1)).tolist()
        [[[[0, 128, 255]]]]
    """
    u8 = (images.detach().float().cpu() * 255).round().clamp(0, 255).to(torch.uint8)  # (B, 3, H, W)
    return np.ascontiguousarray(u8.permute(0, 2, 3, 1).numpy())  # (B, H, W, 3)


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """`(B, 3, H, W)` float in [0, 1] -> B RGB PIL images (via `to_uint8`)."""
    return [Image.fromarray(a) for a in to_uint8(images)]


def quantize(images: torch.Tensor) -> torch.Tensor:
    """The float image an 8-bit PIL image becomes under ``ToTensor``: ``round(255 x) / 255``, `(B, 3, H, W)`."""
    return (images.detach().float().cpu() * 255).round().clamp(0, 255) / 255.0
