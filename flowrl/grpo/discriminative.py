"""Discriminative whole-loss objectives (DisCO, DRPO): they consume rewards and groups directly and replace the
advantage, surrogate and reduction slots of the core. Sources: docs/papers_llm.md."""

from __future__ import annotations

import math

import torch


def mean_logp_score(logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """DisCO's ``logL`` score: ``s(o_i) = (1/|o_i|) sum_t m logp_{i,t}``, `(B,)` with grad."""
    m = mask.float()
    return (logp.float() * m).sum(-1) / m.sum(-1).clamp(min=1)


def mean_ratio_score(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """DisCO's ``Lratio`` score: ``s(o_i) = (1/|o_i|) sum_t m r_{i,t}``, `(B,)` with grad."""
    m = mask.float()
    ratio = (logp.float() - old_logp.detach().float()).clamp(-20.0, 20.0).exp()
    return (ratio * m).sum(-1) / m.sum(-1).clamp(min=1)


def disco_loss(
    scores: torch.Tensor,
    correct: torch.Tensor,
    group_ids: torch.Tensor,
    *,
    tau: float,
    num_questions: float,
    pos_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """DisCO (arXiv 2505.12366, eq. 9; Optimization-AI/DisCO `core_algos.py`) and DRPO (arXiv 2510.04474) objective.

    For every question q with both positives and negatives::

        J_q = sum_{o+} w(o+) [ s(o+) - tau log mean_{o-} exp(s(o-) / tau) ] / sum_{o+} w(o+)

    and ``loss = -sum_q J_q / num_questions``. ``w = 1`` is DisCO (a mean over positives); DRPO passes its length
    weights (`drpo_positive_weights`). All-correct and all-wrong questions contribute 0.

    Args:
        scores: `(B,)` sequence scores with grad (`mean_logp_score` or `mean_ratio_score`).
        correct: `(B,)` 0/1 (binary rewards).
        group_ids: `(B,)` integer question keys.
        tau: log-sum-exp temperature (DisCO: 10 for logL, 1 for Lratio).
        num_questions: the step's global question count (so micro-batches add up).
        pos_weights: `(B,)` non-negative weights of the positives, or None for 1.

    Returns:
        Scalar loss with grad.
    """
    if tau <= 0:
        raise ValueError(f"`tau` must be > 0 (DisCO: 10 for logL, 1 for Lratio), got {tau}.")
    pos = correct.float() > 0
    w = torch.ones_like(scores, dtype=torch.float32) if pos_weights is None else pos_weights.float()
    total = scores.new_zeros((), dtype=torch.float32)
    for g in torch.unique(group_ids):
        in_g = group_ids == g
        p, n = in_g & pos, in_g & ~pos
        if not p.any() or not n.any():
            continue
        neg = scores[n].float() / tau
        lse = tau * (torch.logsumexp(neg, 0) - math.log(float(n.sum())))  # tau log mean exp(s / tau)
        wp = w[p]
        total = total + (wp * (scores[p].float() - lse)).sum() / wp.sum().clamp(min=1e-12)
    return -total / max(float(num_questions), 1.0)


def drpo_positive_weights(
    lengths: torch.Tensor, correct: torch.Tensor, group_ids: torch.Tensor, *, max_len: float, lam: float = 0.1
) -> torch.Tensor:
    """DRPO length weights (arXiv 2510.04474, section 3; Optimization-AI/DRPO `core_algos.py`):
    ``w_i = exp((1 - L_i / L_max) / lam)`` normalised over the correct responses of the question (0 for wrong ones),
    so shorter correct answers weigh more without a correct-but-long answer ever getting a negative signal.

    Args:
        lengths: `(B,)` completion lengths.
        correct: `(B,)` 0/1.
        group_ids: `(B,)` integer question keys.
        max_len: ``L_max``, the generation budget.
        lam: temperature (paper: 0.1).
    """
    raw = ((1 - lengths.float() / max_len) / lam).exp() * (correct.float() > 0).float()  # (B,)
    _, inv = torch.unique(group_ids, return_inverse=True)
    sums = torch.zeros(int(inv.max()) + 1, device=raw.device).index_add_(0, inv, raw)
    return raw / sums[inv].clamp(min=1e-12)


def kl_hinge(kl: torch.Tensor, mask: torch.Tensor, *, delta: float = 1e-4, beta: float = 1e3) -> torch.Tensor:
    """DisCO trust region ``KL(pi_old || pi_theta) <= delta`` as a squared hinge (arXiv 2505.12366, eq. 11):
    ``loss = sg(beta max(KL - delta, 0)) KL`` whose gradient is ``beta [KL - delta]_+ grad KL``, with ``KL`` the
    masked token mean of a per-token estimate (the code uses k3 of ``old_logp`` against ``logp``).

    Args:
        kl: `(B, T)` per-token KL estimate with grad.
        mask: `(B, T)` valid tokens.
        delta, beta: DisCO defaults 1e-4 and 1e3.
    """
    m = mask.float()
    mean_kl = (kl.float() * m).sum() / m.sum().clamp(min=1)
    return (beta * (mean_kl - delta).clamp(min=0)).detach() * mean_kl
