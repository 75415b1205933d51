"""Rank-agnostic broadcasting: per-sample values `(B,)` against latents `(B, C, H, W)` or video `(B, C, F, H, W)`."""

from __future__ import annotations

import torch


def append_dims(t: torch.Tensor, ndim: int) -> torch.Tensor:
    """Append trailing singleton dims to `t` until it has `ndim` dims (a 0-d tensor stays broadcastable).

    Args:
        t: a scalar tensor or `(B,)` per-sample values.
        ndim: rank of the tensor `t` must broadcast against.

    Returns:
        `t` viewed as `(B, 1, ..., 1)` (or `()` for a scalar).
    """
    if t.ndim == 0:
        return t
    if t.ndim > ndim:
        raise ValueError(f"Cannot append dims to a {t.ndim}-d tensor to reach rank {ndim}: it already has more dims.")
    return t.reshape(t.shape + (1,) * (ndim - t.ndim))


def compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """Float dtype for kernel arithmetic: at least fp32 (bf16/fp16 overflow in the SDE mean, flow_grpo comment)."""
    dtype = torch.float32
    for t in tensors:
        if t.dtype.is_floating_point:
            dtype = torch.promote_types(dtype, t.dtype)
    return dtype
