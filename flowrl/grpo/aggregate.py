"""Reward aggregation (slot 1 of the core): K reward functions per sample -> one learning signal per sample.

Two published orders exist and they are not equivalent:

* sum then normalise (TRL `sum_then_normalize`, Flow-GRPO): ``R = sum_k w_k r_k``, then a group advantage of R;
* normalise then sum (GDPO / TRL `normalize_then_sum`, MixGRPO `advantage_aggr`, G2RPO): a group advantage per
  reward, then the weighted sum of advantages (GDPO adds a batch z-score of the sum).

`NaN` marks a reward a function could not give (TRL: `None`); it is skipped in sums, and a sample with no reward at
all is "unscorable": its aggregate is NaN and its advantage 0.
"""

from __future__ import annotations

import torch

from flowrl.grpo.advantages import Scale, group_advantages


def _check(rewards: torch.Tensor, weights: torch.Tensor) -> None:
    if rewards.ndim != 2 or weights.shape != (rewards.shape[1],):
        raise ValueError(
            f"Expected `rewards` of shape (B, K) and `weights` of shape (K,), got {tuple(rewards.shape)} and "
            f"{tuple(weights.shape)}: one column per reward function, one weight per column."
        )


def weighted_sum(rewards: torch.Tensor, *, weights: torch.Tensor) -> torch.Tensor:
    """``R_i = sum_k w_k r_{i,k}`` over the rewards that are not NaN; NaN where every reward is NaN.

    Args:
        rewards: `(B, K)` one column per reward function.
        weights: `(K,)` weight per reward function.

    Returns:
        `(B,)` float32.
    """
    _check(rewards, weights)
    r = rewards.float()
    valid = ~torch.isnan(r)
    total = (torch.where(valid, r, torch.zeros_like(r)) * weights.float()).sum(-1)  # (B,)
    return torch.where(valid.any(-1), total, torch.full_like(total, float("nan")))


def sum_then_normalize(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    *,
    weights: torch.Tensor,
    scale: Scale = "group",
    eps: float = 1e-4,
) -> torch.Tensor:
    """Advantage of the weighted reward sum: ``A = group_advantages(sum_k w_k r_k)``; unscorable samples get 0.

    Unscorable samples are left out of their group's mean and std.

    Args:
        rewards: `(B, K)` rewards, NaN where a function gave none.
        group_ids: `(B,)` integer group keys.
        weights: `(K,)` reward weights.
        scale, eps: as in `group_advantages`.

    Returns:
        `(B,)` float32 advantages.
    """
    total = weighted_sum(rewards, weights=weights)
    ok = ~torch.isnan(total)
    adv = torch.zeros_like(total)
    if ok.any():
        adv[ok] = group_advantages(total[ok], group_ids[ok], scale=scale, eps=eps)
    return adv


def normalize_then_sum(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    *,
    weights: torch.Tensor,
    eps: float = 1e-4,
    batch_normalize: bool = False,
) -> torch.Tensor:
    """Weighted sum of per-reward group advantages: ``A = sum_k w_k (r_k - mean_g r_k) / (std_g r_k + eps)``.

    With ``batch_normalize`` the sum is z-scored over the batch (GDPO, arXiv 2601.05242, as TRL ships it); without
    it this is MixGRPO's `advantage_aggr` and G2RPO's summed advantages.

    Args:
        rewards: `(B, K)` rewards, NaN where a function gave none (that term then contributes 0).
        group_ids: `(B,)` integer group keys.
        weights: `(K,)` reward weights.
        eps: added to each group std.
        batch_normalize: z-score the summed advantage over the batch.

    Returns:
        `(B,)` float32 advantages.
    """
    _check(rewards, weights)
    adv = torch.zeros(rewards.shape[0], dtype=torch.float32, device=rewards.device)
    for k in range(rewards.shape[1]):
        r = rewards[:, k].float()
        ok = ~torch.isnan(r)
        if ok.any():
            adv[ok] += weights[k].float() * group_advantages(r[ok], group_ids[ok], eps=eps)
    if batch_normalize and adv.numel() > 1:
        adv = (adv - adv.mean()) / (adv.std() + eps)
    return adv
