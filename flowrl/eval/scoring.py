"""Score a list of images with several rewards in batches of equal-size images, with a progress bar."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from flowrl.runtime.progress import progress
from rewards import check_reward_output


def load_image(path: str | Path) -> torch.Tensor:
    """An image file as `(3, H, W)` float32 in [0, 1] (RGB; alpha dropped)."""
    with Image.open(path) as img:
        array = np.asarray(img.convert("RGB"), dtype=np.uint8).copy()  # (H, W, 3)
    return torch.from_numpy(array).permute(2, 0, 1).float() / 255.0


def _batches(images: list[torch.Tensor], batch_size: int) -> list[tuple[int, int]]:
    """`[start, end)` spans of consecutive images with the same size, at most `batch_size` long."""
    spans, start = [], 0
    for i in range(1, len(images) + 1):
        if i == len(images) or i - start == batch_size or images[i].shape != images[start].shape:
            spans.append((start, i))
            start = i
    return spans


def score_images(
    images: list[torch.Tensor],
    prompts: list[str],
    metadata: list[dict],
    reward_fns: list,
    *,
    batch_size: int = 8,
    show_progress: bool | None = None,
) -> np.ndarray:
    """`(N, K)` float64 scores of N images under K rewards (column k is ``reward_fns[k]``).

    Args:
        images (`list[torch.Tensor]`): N images, each `(3, H, W)` float in [0, 1]; sizes may differ.
        prompts (`list[str]`): N prompts.
        metadata (`list[dict]`): N metadata dicts, passed to each reward.
        reward_fns (`list`): rewards ``(images, prompts, metadata) -> (B,)``.
        batch_size (`int`, defaults to 8): most images per reward call.
        show_progress (`bool`, *optional*): None shows the bar only on a terminal.
    """
    if not len(images) == len(prompts) == len(metadata):
        raise ValueError(f"{len(images)} images, {len(prompts)} prompts, {len(metadata)} metadata: need one each.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    scores = np.full((len(images), len(reward_fns)), np.nan)
    spans = _batches(images, batch_size)
    with progress(
        len(images), desc="flowrl eval: scoring", disable=None if show_progress is None else not show_progress
    ) as bar:
        for start, end in spans:
            batch = torch.stack(images[start:end])  # (B, 3, H, W)
            for k, fn in enumerate(reward_fns):
                out = fn(batch, prompts[start:end], metadata[start:end])
                scores[start:end, k] = check_reward_output(fn.name, out, end - start).double().numpy()
            bar.update(end - start)
    return scores
