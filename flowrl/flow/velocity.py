"""The model interface of the sampler: a velocity field ``v(x, sigma, cond)`` (docs/architecture.md, Layers).

Adapters in `flowrl.models` wrap diffusers transformers and apply classifier-free guidance inside the call, so the
sampler never sees CFG, timestep scaling (1000 sigma for SD3) or packing.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

Cond = torch.Tensor | tuple[torch.Tensor, ...] | None
"""Prompt conditioning, batch-first with one row per prompt: a tensor, a tuple (or NamedTuple) of tensors, or None."""


class VelocityModel(Protocol):
    """``v = model(x, sigma, cond)``: `x (B, *latent)`, `sigma (B,)` in [0, 1], `cond` rows aligned with x.

    Returns the velocity ``v ~ eps - x0`` of shape `x.shape` (guidance already applied).
    """

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, cond: Any) -> torch.Tensor: ...


def take_rows(cond: Cond, index: torch.Tensor) -> Cond:
    """Rows `index` of every tensor in `cond` (the prompts of a batch of nodes); None stays None."""
    if cond is None:
        return None
    if isinstance(cond, torch.Tensor):
        return cond.index_select(0, index.to(cond.device))
    if isinstance(cond, tuple):
        rows = [take_rows(c, index) for c in cond]
        return tuple(rows) if type(cond) is tuple else type(cond)(*rows)  # NamedTuples keep their type
    raise TypeError(f"`cond` must be a tensor, a tuple of tensors or None (one row per prompt), got {type(cond)}.")
