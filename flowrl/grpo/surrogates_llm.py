"""Surrogates of the LLM GRPO variants (slot 4 of the core): ``(log_ratio, adv, logp) -> (loss (B, T), stats)``.

Same signature as `flowrl.grpo.surrogates`, so each one drops into an `Objective`. Sources: docs/papers_llm.md.
"""

from __future__ import annotations

import torch


def dcpo_bounds(
    old_prob: torch.Tensor, *, eps_low: float, eps_high: float, max_upper: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """DCPO dynamic adaptive clipping bounds (arXiv 2509.02333, eq. 6-7; lime-RL/DCPO `core_algos.py`).

    Constraining the probability change ``|(r - 1) r q| <= eps`` with ``q = pi_old(o_t)`` and ``r = p / q`` gives::

        lower = 0.5 + 0.5 sqrt(max(0, 1 - 4 eps_low / q)),   upper = min(0.5 + 0.5 sqrt(1 + 4 eps_high / q), max_upper)

    At ``q = 1`` this is about ``[1 - eps_low, 1 + eps_high]``; rare tokens (small q) get a wider range.

    Args:
        old_prob: `(B, T)` ``q = exp(old_logp)`` in (0, 1].
        eps_low, eps_high: the probability-change budgets below and above.
        max_upper: cap of the upper bound (code: ``max(clip_ratio_c, 10)``).

    Returns:
        `(lower, upper)`, each `(B, T)` float32.
    """
    q = old_prob.float().clamp(min=1e-12)
    lower = 0.5 + 0.5 * (1 - 4 * eps_low / q).clamp(min=0).sqrt()
    upper = (0.5 + 0.5 * (1 + 4 * eps_high / q).sqrt()).clamp(max=max_upper)
    return lower, upper


def dcpo_surrogate(
    log_ratio: torch.Tensor,
    adv: torch.Tensor,
    logp: torch.Tensor,
    *,
    eps_low: float = 0.16,
    eps_high: float = 0.2,
    dual_clip: float = 10.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """DCPO surrogate: ``loss = -min(r A, clip(r, lower(q), upper(q)) A)``, dual clip ``min(loss, -c A)`` for A < 0.

    ``q = exp(logp - log_ratio)`` (the old policy's probability of the token, detached) sets the per-token bounds
    of `dcpo_bounds`, with the upper bound capped at ``max(c, 10)``.

    Args:
        log_ratio: `(B, T)` ``logp - old_logp``.
        adv: `(B, T)` advantages.
        logp: `(B, T)` current log-probs (only used to recover ``q``).
        eps_low, eps_high: README example 0.16 / 0.2 (the released script uses eps_high 0.28).
        dual_clip: ``c`` (script: 10).
    """
    if dual_clip <= 1.0:
        raise ValueError(f"`dual_clip` must be > 1 (DCPO script: 10), got {dual_clip}.")
    old_prob = (logp.detach().float() - log_ratio.detach().float()).exp()  # (B, T) q
    lower, upper = dcpo_bounds(old_prob, eps_low=eps_low, eps_high=eps_high, max_upper=max(dual_clip, 10.0))
    ratio = log_ratio.exp()
    clipped = torch.minimum(torch.maximum(ratio, lower), upper)
    loss = torch.maximum(-ratio * adv, -clipped * adv)
    loss = torch.where(adv < 0, torch.minimum(loss, -dual_clip * adv), loss)
    with torch.no_grad():
        low = ((ratio < lower) & (adv < 0)).float()
        high = ((ratio > upper) & (adv > 0)).float()
    return loss, {"clip_low": low, "clip_high": high, "clip_region": low + high, "ratio": ratio.detach()}
