"""JPEG file size as a reward (DDPO's and Flow-GRPO's programmatic rewards).

DDPO (Black et al. 2023, `ddpo_pytorch/rewards.py`) and Flow-GRPO (`flow_grpo/rewards.py`) both encode each image
as a JPEG at quality 95 with PIL and measure ``buffer.tell() / 1000`` (kB). ``jpeg_incompressibility`` is that size;
``jpeg_compressibility`` is its negation, which Flow-GRPO also divides by 500 (``-rew / 500``; DDPO returns ``-rew``).
flowrl follows Flow-GRPO.
"""

from __future__ import annotations

import io

import torch
from PIL import Image

from rewards.images import check_images, to_uint8


def jpeg_size_kb(images: torch.Tensor, *, quality: int = 95) -> torch.Tensor:
    """JPEG size in kB (1 kB = 1000 bytes) of each image, PIL encoder at `quality`.

    Args:
        images (`torch.Tensor`): `(B, 3, H, W)` float in [0, 1] (quantised to 8 bits first).
        quality (`int`, defaults to 95): JPEG quality, as DDPO and Flow-GRPO.

    Returns:
        `torch.Tensor`: `(B,)` float32.
    """
    sizes = []
    for array in to_uint8(images):  # (H, W, 3)
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
        sizes.append(buffer.tell() / 1000)
    return torch.tensor(sizes, dtype=torch.float32)


class JpegReward:
    """``sign * size_kB / scale``: `jpeg_incompressibility` (sign +1, scale 1) or `jpeg_compressibility`
    (sign -1, scale 500), as Flow-GRPO defines them.

    Example:
        >>> flat = torch.full((1, 3, 64, 64), 0.5)
        >>> noise = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
        >>> r = JpegReward(compressible=True)(torch.cat([flat, noise]), ["", ""])
        >>> bool(r[0] > r[1])  # a flat image compresses better
        True
    """

    def __init__(self, *, compressible: bool, quality: int = 95, scale: float | None = None) -> None:
        self.sign = -1.0 if compressible else 1.0
        self.scale = (500.0 if compressible else 1.0) if scale is None else scale
        self.quality = quality
        self.name = "jpeg_compressibility" if compressible else "jpeg_incompressibility"

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, prompts: list[str], metadata: list[dict] | None = None) -> torch.Tensor:
        del prompts, metadata
        images = check_images(self.name, images)
        return self.sign * jpeg_size_kb(images, quality=self.quality) / self.scale
