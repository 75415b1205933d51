"""Classifier-free guidance with both branches in ONE forward: the batch doubled (unconditional rows first), then
``v = v_u + w (v_c - v_u)`` on the output. Pure torch; the model adapters and the ShapeWorld sampler use it."""

from __future__ import annotations

from typing import NamedTuple

import torch


def cfg_rows(uncond: NamedTuple, cond: NamedTuple) -> NamedTuple:
    """`cond`'s tensors with the unconditional rows (batch 1 or B, broadcast) in front: each field `(2B, ...)`."""
    batch = cond[0].shape[0]
    return type(cond)(*(torch.cat([u.expand(batch, *u.shape[1:]), c]) for u, c in zip(uncond, cond, strict=True)))


def guide(out: torch.Tensor, guidance_scale: float, *, detach_uncond: bool = False) -> torch.Tensor:
    """`(2B, ...)` velocities (unconditional rows first) -> ``v_u + w (v_c - v_u)`` `(B, ...)`. `detach_uncond`: the
    gradient flows through the conditional half only (flow_grpo `train_sd3.py` `compute_log_prob`)."""
    v_uncond, v_cond = out.chunk(2)  # (B, ...) each
    if detach_uncond:
        v_uncond = v_uncond.detach()
    return v_uncond + guidance_scale * (v_cond - v_uncond)
