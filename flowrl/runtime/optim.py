"""The optimizer of both trainers."""

from __future__ import annotations

import math
from typing import Literal

import torch

SCHEDULES = ("constant", "linear", "cosine")


def make_optimizer(
    params: list[torch.nn.Parameter],
    *,
    name: Literal["adamw", "sgd"] = "adamw",
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    weight_decay: float = 0.0,
    fused: bool | None = None,
) -> torch.optim.Optimizer:
    """AdamW, or SGD with momentum ``betas[0]``. `fused` (AdamW): one kernel over all tensors (torch's default when
    None); the text trainer fuses, 5x less optimizer time on CPU than foreach for its many small tensors."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=betas[0], weight_decay=weight_decay)
    if name != "adamw":
        raise ValueError(f"Unknown optimizer {name!r}. Valid: ['adamw', 'sgd'].")
    return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay, fused=fused)


def scheduled_lr(
    step: int,
    *,
    total: int,
    lr: float,
    schedule: Literal["constant", "linear", "cosine"] = "constant",
    decay_start: float = 0.0,
    final_ratio: float = 0.0,
    warmup: int = 0,
    min_progress: float = 0.0,
) -> float:
    """The learning rate of step `step` (0-based) of `total`: ``lr`` until ``decay_start * total`` (a fraction of the
    run), then down to ``final_ratio * lr`` at the last step, on a straight line (``linear``) or a half cosine
    (``cosine``); ``constant`` keeps ``lr``. With ``decay_start`` > 0 this is the warmup-free "stable then decay"
    shape: the run trains at the full rate, then anneals.

    ``warmup`` > 0 steps first climb linearly, ``lr (step + 1) / warmup``, and the decay starts after them at the
    latest. ``min_progress`` is a floor on the decay's progress t in [0, 1] (the pretraining scripts pass the spent
    fraction of a time budget, so a run slowed by a busy CPU still finishes its decay).

    >>> scheduled_lr(0, total=5, lr=1.0, schedule="linear"), scheduled_lr(4, total=5, lr=1.0, schedule="linear")
    (1.0, 0.0)
    >>> scheduled_lr(0, total=5, lr=1.0, schedule="linear", warmup=2), scheduled_lr(2, total=5, lr=1.0, warmup=2)
    (0.5, 1.0)
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"Unknown learning-rate schedule {schedule!r}. Valid: {list(SCHEDULES)}.")
    if not 0.0 <= decay_start < 1.0 or not 0.0 <= final_ratio <= 1.0:
        raise ValueError(
            f"decay_start must be in [0, 1) and final_ratio in [0, 1] (fractions of the run and of lr); got "
            f"{decay_start} and {final_ratio}."
        )
    if step < warmup:
        return lr * (step + 1) / warmup
    start = max(decay_start * (total - 1), warmup)
    if schedule == "constant" or total <= 1 or (step <= start and min_progress <= 0.0):
        return lr
    done = (step - start) / (total - 1 - start) if step > start else 0.0
    t = min(1.0, max(min_progress, done))  # 0 at the decay's start, 1 at the last step
    shape = 1.0 - t if schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * t))
    return lr * (final_ratio + (1.0 - final_ratio) * shape)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Every parameter group's learning rate to `lr` (a resumed optimizer's restored rate included)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
