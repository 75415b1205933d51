"""The reward interface: a callable ``(images, prompts, metadata) -> (B,) float32`` with a `name`."""

from __future__ import annotations

from typing import Any, Protocol

import torch


class RewardFn(Protocol):
    """A reward: no grad, deterministic, batched.

    `images` are `(B, 3, H, W)` float in [0, 1] (image rewards) or a list of strings (text rewards); `prompts` has B
    entries; `metadata` is one dict per sample (or None). Returns a `(B,)` float32 tensor on the CPU.
    """

    name: str

    def __call__(self, images: Any, prompts: list[str], metadata: list[dict] | None = None) -> torch.Tensor: ...


def check_reward_output(name: str, out: Any, batch: int) -> torch.Tensor:
    """Validate a reward's output: a `(B,)` float tensor. NaN / inf are allowed here (the trainer counts and skips
    them); a wrong shape or type is an error naming the reward."""
    if not isinstance(out, torch.Tensor):
        raise TypeError(
            f"Reward {name!r} returned {type(out).__name__}; a reward must return a torch.Tensor of shape ({batch},)."
        )
    if out.shape != (batch,):
        raise ValueError(
            f"Reward {name!r} returned shape {tuple(out.shape)} for {batch} samples; expected "
            f"({batch},), one score per sample."
        )
    return out.detach().float().cpu()
