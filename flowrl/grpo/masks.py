"""Selection masks (slot 3 of the core): which samples and which tokens / denoising steps carry a loss.

Masks keep shapes static (no re-indexing): a dropped sample or token gets 0 in its mask and drops out of the sums
and of the normalisers computed from the mask.
"""

from __future__ import annotations

import torch

from flowrl.grpo.advantages import group_stats


def nonzero_variance_mask(rewards: torch.Tensor, group_ids: torch.Tensor, *, tol: float = 0.0) -> torch.Tensor:
    """Keep samples whose group's rewards vary: ``std_g(R) > tol`` (DAPO dynamic sampling, flow_grpo filter).

    A group whose samples all got the same reward has zero advantage everywhere and only dilutes the normaliser.

    Args:
        rewards: `(B,)` rewards.
        group_ids: `(B,)` integer group keys.
        tol: std at or below which a group counts as constant.

    Returns:
        `(B,)` bool, True = keep.
    """
    return group_stats(rewards, group_ids).std > tol


def truncation_mask(mask: torch.Tensor, truncated: torch.Tensor) -> torch.Tensor:
    """Zero the whole row of a completion that hit the length limit (DAPO overlong filtering).

    Args:
        mask: `(B, T)` completion-token mask.
        truncated: `(B,)` bool, True where the completion ended without EOS.

    Returns:
        `(B, T)` mask of the same dtype.
    """
    if truncated.shape != mask.shape[:1]:
        raise ValueError(f"`truncated` must have shape ({mask.shape[0]},), got {tuple(truncated.shape)}.")
    return mask * (~truncated.bool())[:, None].to(mask.dtype)


def top_entropy_mask(entropy: torch.Tensor, mask: torch.Tensor, *, quantile: float) -> torch.Tensor:
    """Keep the top ``quantile`` fraction of valid tokens by entropy (Wang et al. 2025, "80/20 forking tokens").

    The threshold is ``q = quantile_{valid tokens}(H, 1 - quantile)`` and tokens with ``H >= q`` are kept, as in
    TRL's `top_entropy_quantile`. With ``quantile = 1`` every valid token is kept.

    Args:
        entropy: `(B, T)` per-token policy entropy.
        mask: `(B, T)` valid-token mask.
        quantile: fraction of tokens kept, in (0, 1] (paper: 0.2).

    Returns:
        `(B, T)` mask of `mask`'s dtype.
    """
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"`quantile` is the kept fraction and must be in (0, 1], got {quantile}.")
    valid = mask.bool()
    if not valid.any():
        return mask
    threshold = torch.quantile(entropy.float()[valid], 1.0 - quantile)
    return mask * (entropy.float() >= threshold).to(mask.dtype)
