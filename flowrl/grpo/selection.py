"""Sample and token selection of the LLM GRPO variants (slot 3 of the core): masks, never re-indexing."""

from __future__ import annotations

import math

import torch

from flowrl.grpo.masks import top_entropy_mask


def max_variance_subset_mask(adv: torch.Tensor, group_ids: torch.Tensor, *, keep_ratio: float) -> torch.Tensor:
    """D³S sample-level down-sampling (arXiv 2509.22115, section 3.1, D³S-I): in each group keep the
    ``k = ceil(keep_ratio G)`` samples whose advantages have the largest variance.

    For a fixed ``k`` the variance is maximised by taking the ``j`` smallest and ``k - j`` largest advantages; every
    ``j in 0..k`` is tried and the best kept (ties: the smallest ``j``).

    Args:
        adv: `(B,)` advantages.
        group_ids: `(B,)` integer group keys.
        keep_ratio: fraction of each group kept, in (0, 1].

    Returns:
        `(B,)` bool, True = keep.
    """
    if not 0.0 < keep_ratio <= 1.0:
        raise ValueError(f"`keep_ratio` is the kept fraction of each group and must be in (0, 1], got {keep_ratio}.")
    a = adv.detach().float()
    keep = torch.zeros_like(a, dtype=torch.bool)
    for g in torch.unique(group_ids):
        idx = torch.nonzero(group_ids == g).flatten()  # (G,)
        k = max(1, math.ceil(keep_ratio * idx.numel()))
        order = idx[torch.argsort(a[idx])]  # ascending advantage
        best, best_var = None, -1.0
        for j in range(k + 1):
            chosen = torch.cat([order[:j], order[order.numel() - (k - j) :]])
            var = float(a[chosen].var(unbiased=False))
            if var > best_var + 1e-12:
                best, best_var = chosen, var
        keep[best] = True
    return keep


def adv_entropy_token_mask(
    adv: torch.Tensor, entropy: torch.Tensor, mask: torch.Tensor, *, keep_ratio: float
) -> torch.Tensor:
    """D³S token-level down-sampling (arXiv 2509.22115, section 3.2): keep the top ``keep_ratio`` of valid tokens
    by ``|A_{i,t}| * H_{i,t}`` (advantage magnitude times policy entropy), over the whole batch.

    Args:
        adv: `(B,)` or `(B, T)` advantages.
        entropy: `(B, T)` per-token policy entropy.
        mask: `(B, T)` valid tokens.
        keep_ratio: kept fraction in (0, 1].

    Returns:
        `(B, T)` mask of `mask`'s dtype.
    """
    a = adv.float()[:, None] if adv.ndim == 1 else adv.float()
    score = a.abs() * entropy.detach().float()  # (B, T)
    return top_entropy_mask(score, mask, quantile=keep_ratio)
