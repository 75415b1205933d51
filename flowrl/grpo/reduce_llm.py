"""Loss reductions of the LLM GRPO variants (slot 6 of the core), same signature as `flowrl.grpo.reduce`."""

from __future__ import annotations

import torch

from flowrl.grpo.reduce import Normalizer


def only_token_mean(loss: torch.Tensor, mask: torch.Tensor, *, norm: Normalizer) -> torch.Tensor:
    """DCPO "only-token-mean" (OTM, arXiv 2509.02333, section 3.3): ``sum_i (sum_t m l / |o_i|)``.

    Each response's token mean, summed over responses without dividing by their number, so a batch's gradient
    does not shrink when responses are added. The global normaliser is not used; micro-batch sums add up exactly.
    """
    del norm
    m = mask.bool()
    masked = torch.where(m, loss.float(), torch.zeros((), dtype=torch.float32, device=loss.device))
    return (masked.sum(-1) / m.float().sum(-1).clamp(min=1)).sum()  # (B,) -> ()
