"""A control reward: uniform noise in [0, 1) that does not depend on what the image shows.

A learning claim needs a control beside it (docs/shapeworld_rl.md): the same run with this reward shows what the
update does when the reward carries no information about the image. The score of a sample is a pseudo-random
function of its exact bytes and prompt (SHA-256 of the 8-bit image and the prompt, mapped to [0, 1)), so it is
deterministic (a resumed run sees the same rewards) yet uncorrelated with content: two images that differ in one
pixel get independent scores.
"""

from __future__ import annotations

import hashlib

import torch

from rewards.images import check_images, to_uint8


class UniformNoiseReward:
    """``u = int(sha256(uint8 image || prompt)[:8]) / 2**64`` in [0, 1), one per sample."""

    name = "uniform_noise"

    def __call__(self, images: torch.Tensor, prompts: list[str], metadata: list[dict] | None = None) -> torch.Tensor:
        images = check_images(self.name, images)
        scores = []
        for array, prompt in zip(to_uint8(images), prompts, strict=True):
            digest = hashlib.sha256(array.tobytes() + prompt.encode()).digest()
            scores.append(int.from_bytes(digest[:8], "big") / 2**64)
        return torch.tensor(scores, dtype=torch.float32)
