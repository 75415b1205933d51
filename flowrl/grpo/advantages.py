"""Advantage estimators (slot 2 of the core): rewards of a group of samples -> one advantage per sample.

Every function here is one equation on plain tensors: `rewards (B,)` and integer `group_ids (B,)` (the prompt,
or any other key that defines who competes with whom). Groups need not be contiguous nor of equal size.
See docs/papers.md for the source of each estimator.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch

Scale = Literal["group", "batch", "none"]


class GroupStats(NamedTuple):
    """Per-sample view of its group's statistics, all `(B,)` float32."""

    mean: torch.Tensor
    std: torch.Tensor  # unbiased (Bessel-corrected) by default, 0 for singleton groups
    count: torch.Tensor


def _check(rewards: torch.Tensor, group_ids: torch.Tensor) -> None:
    if rewards.ndim != 1 or group_ids.shape != rewards.shape:
        raise ValueError(
            f"Expected `rewards` and `group_ids` of the same shape (B,), got {tuple(rewards.shape)} and "
            f"{tuple(group_ids.shape)}. Flatten groups into one batch axis and pass one group id per sample."
        )
    if group_ids.dtype.is_floating_point:
        raise ValueError(f"`group_ids` must be an integer tensor, got {group_ids.dtype}.")


def group_stats(rewards: torch.Tensor, group_ids: torch.Tensor, *, unbiased: bool = True) -> GroupStats:
    """Mean, std and size of each sample's group, broadcast back to the samples.

    Args:
        rewards: `(B,)` rewards.
        group_ids: `(B,)` integer group keys (any values; need not be contiguous).
        unbiased: divide the squared deviations by ``n - 1`` (torch's default, TRL, DanceGRPO); False = by ``n``
            (numpy's default ``np.std``, as flow_grpo's and TempFlow's stat trackers).
    """
    _check(rewards, group_ids)
    r = rewards.float()
    _, inverse = torch.unique(group_ids, return_inverse=True)  # (B,) in [0, n_groups)
    n_groups = int(inverse.max()) + 1 if inverse.numel() else 0
    count = torch.zeros(n_groups, dtype=torch.float32, device=r.device).index_add_(0, inverse, torch.ones_like(r))
    total = torch.zeros_like(count).index_add_(0, inverse, r)
    mean = total / count  # (n_groups,)
    sq_dev = torch.zeros_like(count).index_add_(0, inverse, (r - mean[inverse]) ** 2)
    var = sq_dev / ((count - 1).clamp(min=1) if unbiased else count)  # singleton group: sq_dev = 0 -> var 0
    return GroupStats(mean=mean[inverse], std=var.sqrt()[inverse], count=count[inverse])


def group_advantages(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    *,
    scale: Scale = "group",
    eps: float = 1e-4,
    clip: float | None = None,
    unbiased: bool = True,
    batch_std: float | None = None,
) -> torch.Tensor:
    """GRPO advantage: ``A_i = (R_i - mean_g(R)) / (S + eps)``, optionally clipped to ``[-clip, clip]``.

    The mean is always per group; the scale ``S`` is chosen by `scale`:
    ``"group"`` the group's std (GRPO, DeepSeekMath eq. 3), ``"batch"`` the std of the whole batch's rewards
    (Lite-PPO / flow_grpo `global_std`), ``"none"`` no division, ``S + eps := 1`` (Dr. GRPO).

    Args:
        rewards: `(B,)` scalar rewards.
        group_ids: `(B,)` integer group keys.
        scale: which std divides the centred reward.
        eps: added to the std (TRL 1e-4, verl 1e-6, flow_grpo 1e-4).
        clip: clamp ``|A|`` to this value (flow_grpo uses 5); None keeps it unclipped.
        unbiased: Bessel-corrected stds (torch, TRL); False = numpy's biased ``np.std`` (flow_grpo, TempFlow).
        batch_std: with ``scale="batch"``, the batch's std when the batch holds more than `rewards` (every
            process's samples of the iteration); None = the std of `rewards`.

    Returns:
        `(B,)` float32 advantages. Singleton groups get 0.
    """
    if scale not in _SCALES:
        raise ValueError(f"Unknown advantage scale {scale!r}. Valid: {sorted(_SCALES)}.")
    stats = group_stats(rewards, group_ids, unbiased=unbiased)
    centred = rewards.float() - stats.mean
    if scale == "batch" and batch_std is not None:
        denom = torch.full_like(centred, batch_std + eps)
    else:
        denom = _SCALES[scale](rewards.float(), stats, eps, unbiased).expand_as(centred)
    # a constant group with eps = 0 would give 0 / 0: its advantage is 0, as for a singleton
    adv = torch.where((stats.count > 1) & (denom > 0), centred / torch.where(denom > 0, denom, 1.0), 0.0)
    return adv if clip is None else adv.clamp(-clip, clip)


def batch_std(rewards: torch.Tensor, *, unbiased: bool = True) -> float:
    """The std of every reward of the batch (flow_grpo `global_std`: ``np.std(rewards)``, biased); 1 for B = 1."""
    r = rewards.float().flatten()
    return float(r.std(unbiased=unbiased)) if r.numel() > 1 else 1.0


_SCALES = {
    "group": lambda r, stats, eps, unbiased: stats.std + eps,
    "batch": lambda r, stats, eps, unbiased: torch.tensor(batch_std(r, unbiased=unbiased) + eps, device=r.device),
    "none": lambda r, stats, eps, unbiased: torch.ones((), device=r.device),
}


def rloo_advantages(rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """REINFORCE leave-one-out (Ahmadian et al. 2024): ``A_i = R_i - mean_{j != i, g(j) = g(i)} R_j``.

    Equivalently ``G / (G - 1) * (R_i - mean_g R)``. Singleton groups get 0.

    Args:
        rewards: `(B,)` rewards.
        group_ids: `(B,)` integer group keys.
    """
    stats = group_stats(rewards, group_ids)
    factor = stats.count / (stats.count - 1).clamp(min=1)
    return torch.where(stats.count > 1, factor * (rewards.float() - stats.mean), torch.zeros_like(stats.mean))


def clip_advantages(adv: torch.Tensor, *, max_abs: float) -> torch.Tensor:
    """Clamp advantages to ``[-max_abs, max_abs]`` (flow_grpo `adv_clip_max = 5`)."""
    return adv.clamp(-max_abs, max_abs)


def broadcast_advantages(adv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Broadcast per-sample advantages `(B,)` to per-edge `(B, T)`; per-edge advantages pass through."""
    if adv.shape == mask.shape:
        return adv.float()
    if adv.ndim == 1 and adv.shape[0] == mask.shape[0]:
        return adv.float()[:, None].expand_as(mask)
    raise ValueError(
        f"Advantages of shape {tuple(adv.shape)} do not fit a mask of shape {tuple(mask.shape)}: "
        "pass (B,) per sample or (B, T) per edge."
    )
