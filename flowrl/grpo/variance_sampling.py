"""MMR1's Variance-Aware Sampling (arXiv 2509.21268, Sec. 3): prompts scored by a Variance Promotion Score.

For prompt i with G rollouts of correctness c_ij in {0, 1} and pass rate p_i = mean_j c_ij:

* Outcome Variance Score ``OVS_i = p_i (1 - p_i)`` (the Bernoulli variance, largest at p = 1/2);
* Trajectory Diversity Score ``TDS_i``: the paper uses an inverse self-BLEU of the rollouts; here the mean over
  pairs of rollouts of ``1 - Jaccard(bigrams_j, bigrams_k)`` of their token ids (our stand-in [?]);
* ``VPS_i = alpha OVS_i + beta TDS_i`` (alpha, beta [?]: our reading of the paper gives no values, so both are
  hooks, default 1);
* sampling: a fraction ``lam`` of each batch drawn with probability proportional to VPS, the rest uniformly
  (``lam`` [?], default 0.5): ``P_i = lam VPS_i / sum_k VPS_k + (1 - lam) / N``. Scores are refreshed every
  ``T_update`` steps by the caller.
"""

from __future__ import annotations

import torch


def outcome_variance(correct: torch.Tensor) -> torch.Tensor:
    """OVS: `(N, G)` correctness in {0, 1} -> `(N,)` ``p (1 - p)``."""
    p = correct.float().mean(-1)
    return p * (1 - p)


def trajectory_diversity(rollouts: list[list[list[int]]]) -> torch.Tensor:
    """TDS: per prompt, the mean over pairs of its rollouts (token id lists) of ``1 - |A & B| / |A | B|`` on their
    bigram sets (0 when all rollouts are equal, 1 when no two share a bigram). `(N,)` float32."""
    out = []
    for group in rollouts:
        grams = [set(zip(r[:-1], r[1:], strict=False)) if len(r) > 1 else {tuple(r)} for r in group]
        pairs = [(a, b) for i, a in enumerate(grams) for b in grams[i + 1 :]]
        if not pairs:
            out.append(0.0)
            continue
        out.append(sum(1 - len(a & b) / max(len(a | b), 1) for a, b in pairs) / len(pairs))
    return torch.tensor(out, dtype=torch.float32)


def variance_promotion_score(
    ovs: torch.Tensor, tds: torch.Tensor, *, alpha: float = 1.0, beta: float = 1.0
) -> torch.Tensor:
    """VPS ``= alpha OVS + beta TDS`` `(N,)`."""
    return alpha * ovs + beta * tds


def vas_probabilities(vps: torch.Tensor, *, lam: float = 0.5) -> torch.Tensor:
    """Sampling probabilities ``lam VPS / sum VPS + (1 - lam) / N`` `(N,)` (uniform when every VPS is 0)."""
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam (the VPS-weighted share of a batch) must be in [0, 1], got {lam}.")
    n = vps.numel()
    total = vps.sum()
    weighted = vps / total if total > 0 else torch.full_like(vps, 1.0 / n)
    return lam * weighted + (1 - lam) / n
