"""Per-edge weights (slot 5 of the core): detached multipliers of each edge's loss."""

from __future__ import annotations

import torch


def noise_aware_weights(std: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """TempFlow-GRPO noise-aware step weight (arXiv 2508.04324, section 3.3; docs/flow_methods.md, tempflow_grpo).

    ``w_i = s_i / mean_{j trained}(s_j)`` with ``s_i = sigma_i * sqrt(Delta_i)`` the step's Gaussian std, so the
    weights average 1 over trained steps. It cancels the ``1 / (sigma sqrt(Delta))`` growth of the log-prob
    gradient at low-noise steps. The official code hard-codes ``1 / mean = 2.25`` (SD3.5-M, 10 steps, a = 0.7);
    here it is computed.

    Args:
        std: `(T,)` per step or `(B, T)` per edge.
        mask: same shape, trained edges.

    Returns:
        Detached weights of `std`'s shape; 0 on untrained edges.
    """
    m = mask.float()
    s = std.detach().float()
    mean = (s * m).sum() / m.sum().clamp(min=1)
    return torch.where(m > 0, s / mean, torch.zeros_like(s))


def inverse_delta_weights(delta: torch.Tensor) -> torch.Tensor:
    """GRPO-Guard gradient reweighting (arXiv 2510.22319): ``w_i = 1 / Delta_i`` with ``Delta_i = t_i - t_{i+1}``.

    After RatioNorm, ``d log r_hat / d v`` is proportional to ``Delta_i``; dividing by it equalises the gradient
    scale across noise levels. Edges with ``Delta = 0`` (padding) get weight 0.
    """
    d = delta.detach().float()
    return torch.where(d > 0, 1.0 / torch.where(d > 0, d, torch.ones_like(d)), torch.zeros_like(d))
