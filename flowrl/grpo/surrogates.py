"""Surrogate objectives (slot 4b of the core): log-ratio and advantage -> per-token loss to *minimise*.

Every surrogate has the same signature ``(log_ratio, adv, logp) -> (loss (B, T), stats)`` where `adv` is already
broadcast to `(B, T)` and `logp` is the current log-prob (only the REINFORCE-style forms use it). `stats` holds
detached `(B, T)` float tensors (clip indicators) that the caller reduces with the mask; no `.item()` here.
"""

from __future__ import annotations

import torch


def clipped_surrogate(
    log_ratio: torch.Tensor,
    adv: torch.Tensor,
    logp: torch.Tensor,
    *,
    eps_low: float,
    eps_high: float,
    dual_clip: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO clipped surrogate with decoupled bounds (PPO eq. 7; DAPO "clip-higher" eq. 10) and optional dual clip.

    ``loss = -min(r A, clip(r, 1 - eps_low, 1 + eps_high) A)``; with ``dual_clip = c > 1`` the loss of tokens with
    ``A < 0`` is further capped at ``-c A`` (Ye et al. 2020, verl `clip_ratio_c`).

    Args:
        log_ratio: `(B, T)` log importance ratio.
        adv: `(B, T)` advantages.
        logp: `(B, T)` unused here.
        eps_low, eps_high: clip range below and above 1 (GRPO 0.2 / 0.2, DAPO 0.2 / 0.28, Flow-GRPO 1e-4).
        dual_clip: the constant c (> 1) of dual clipping, or None.
    """
    del logp
    if dual_clip is not None and dual_clip <= 1.0:
        raise ValueError(f"`dual_clip` must be > 1 (verl default 3.0), got {dual_clip}.")
    ratio = log_ratio.exp()
    clipped = ratio.clamp(1.0 - eps_low, 1.0 + eps_high)
    loss = torch.maximum(-ratio * adv, -clipped * adv)
    if dual_clip is not None:
        loss = torch.where(adv < 0, torch.minimum(loss, -dual_clip * adv), loss)
    with torch.no_grad():
        low = ((ratio < 1.0 - eps_low) & (adv < 0)).float()
        high = ((ratio > 1.0 + eps_high) & (adv > 0)).float()
    return loss, {"clip_low": low, "clip_high": high, "clip_region": low + high, "ratio": ratio.detach()}


def cispo_surrogate(
    log_ratio: torch.Tensor, adv: torch.Tensor, logp: torch.Tensor, *, eps_low: float, eps_high: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """CISPO (MiniMax-M1, arXiv 2506.13585, eq. 4): ``loss = -sg(clip(r, 1 - eps_low, 1 + eps_high)) A logp``.

    The importance weight is clipped and detached, so every token keeps a REINFORCE gradient scaled by it
    (no token is dropped by clipping). TRL recommends ``eps_high = 4.0``; verl's example disables the lower side.
    """
    ratio = log_ratio.exp()
    weight = ratio.clamp(1.0 - eps_low, 1.0 + eps_high).detach()
    loss = -weight * adv * logp.float()
    with torch.no_grad():
        clipped = ((ratio < 1.0 - eps_low) | (ratio > 1.0 + eps_high)).float()
    return loss, {"clip_region": clipped, "ratio": ratio.detach()}


def reinforce_surrogate(
    log_ratio: torch.Tensor, adv: torch.Tensor, logp: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Plain REINFORCE (Williams 1992): ``loss = -A logp``; ignores the ratio (correct only on-policy)."""
    return -adv * logp.float(), {"ratio": log_ratio.detach().exp()}
