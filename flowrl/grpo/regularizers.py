"""Per-token regularisers of the LLM GRPO variants (slot 7 of the core): `(B, T)` terms to *minimise*, added to
the loss as ``coef * reduce(term, mask)`` with the objective's own reduction."""

from __future__ import annotations

import torch


def masked_teacher_kl(
    logp: torch.Tensor, teacher_logp: torch.Tensor, correct: torch.Tensor, *, mask_correct: bool = True
) -> torch.Tensor:
    """KDRL reverse KL to a teacher (arXiv 2506.02208, section 3): ``k2 = (logp - teacher_logp)^2 / 2`` per token of
    the student's own samples, a low-variance estimator of ``KL(pi_theta || pi_T)`` whose gradient is unbiased.

    With reward-guided masking a response that is already correct does not imitate the teacher (term 0).

    Args:
        logp: `(B, T)` student log-probs (with grad).
        teacher_logp: `(B, T)` teacher log-probs of the same tokens.
        correct: `(B,)` 0/1 (or bool) correctness.
        mask_correct: switch the term off on correct responses (KDRL's masking).

    Returns:
        `(B, T)` float32.
    """
    k2 = 0.5 * (logp.float() - teacher_logp.detach().float()) ** 2
    if not mask_correct:
        return k2
    return k2 * (correct.float() <= 0).float()[:, None]


def llds_penalty(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """LLDS likelihood preservation (arXiv 2512.04220, eq. 5; vengdeng/LLDS `dp_actor.py`).

    ``term_{i,t} = g_i * [A_i >= 0] * max(0, old_logp - logp)``, with the response gate ``g_i = 1`` iff
    ``sum_t m (old_logp - logp) > 0`` (the response's likelihood fell). Only non-negative-advantage responses are
    protected from "lazy likelihood displacement".

    Args:
        logp: `(B, T)` current log-probs (with grad).
        old_logp: `(B, T)` log-probs at rollout.
        adv: `(B,)` per-response advantages.
        mask: `(B, T)` valid tokens.

    Returns:
        `(B, T)` float32, 0 off the mask.
    """
    drop = old_logp.detach().float() - logp.float()  # (B, T)
    m = mask.float()
    gate = ((drop.detach() * m).sum(-1) > 0) & (adv.float() >= 0)  # (B,)
    return gate.float()[:, None] * drop.clamp(min=0) * m
