"""Weights of several reward objectives (slot 1 of the core).

* fixed weights over the heads of one multi-label reward model (`multi_objective_rewards`; arXiv 2503.21819, Li et
  al., "Optimizing Safe and Aligned Language Generation: A Multi-Objective GRPO Approach");
* dynamic weights (arXiv 2509.11452, Lu et al., "Learning to Optimize Multi-Objective Alignment Through Dynamic
  Reward Weighting"), whose state lives in `flowrl.grpo.trackers.DynamicRewardWeights`; these are its pure steps.
"""

from __future__ import annotations

import math

import torch

from flowrl.grpo.aggregate import weighted_sum


def multi_objective_rewards(scores: torch.Tensor, *, weights: torch.Tensor) -> torch.Tensor:
    """Safe / aligned generation with one multi-label reward model (arXiv 2503.21819, section 3): the model predicts
    K alignment scores per response (the paper: politeness, meaningfulness, actionability, safety) and GRPO trains
    on their weighted combination ``R_i = sum_k w_k s_{i,k}``; the group advantage of R follows as usual.

    The paper's weights are not in the sources we could read ([?] in docs/papers_llm.md), so ``weights`` has no
    default: pass one non-negative weight per head. NaN scores are skipped as in `aggregate.weighted_sum`.

    Args:
        scores: `(B, K)` one column per head of the multi-label scorer.
        weights: `(K,)` non-negative, not all zero.

    Returns:
        `(B,)` float32.
    """
    w = torch.as_tensor(weights, dtype=torch.float32)
    if w.ndim != 1 or bool((w < 0).any()) or not bool((w > 0).any()) or not bool(torch.isfinite(w).all()):
        raise ValueError(
            f"`weights` must be a 1-D tensor of finite non-negative weights, not all zero, got {w.tolist()}: "
            "one weight per head of the multi-label scorer (a safety head with weight 0 would be ignored)."
        )
    return weighted_sum(scores, weights=w)


def gradient_influence(grads: torch.Tensor) -> torch.Tensor:
    """Influence of each objective on all others: ``s_k = sum_j <g_k, g_j>`` (the Gram matrix's row sums).

    Args:
        grads: `(K, P)` one flattened policy gradient per objective (the code uses a subset of layers).

    Returns:
        `(K,)` float32.
    """
    g = grads.detach().float()
    return (g @ g.T).sum(-1)


def mirror_descent_weights(weights: torch.Tensor, influence: torch.Tensor, *, lr: float) -> torch.Tensor:
    """One exponentiated-gradient (mirror descent on the simplex) step: ``w <- softmax(log w + lr * s)``.

    ``lr`` is the code's ``eta_t / lambda_reg``. Objectives whose gradients align with the others gain weight.

    Args:
        weights: `(K,)` positive weights summing to 1.
        influence: `(K,)` from `gradient_influence` (accumulated over a few steps).
        lr: step size.
    """
    return torch.softmax(weights.float().clamp(min=1e-12).log() + lr * influence.float(), dim=0)


def hypervolume_meta_reward(contribution: float) -> float:
    """Hypervolume-guided meta-reward (same paper, preference-given mode): ``m = 0.5 + 1.5 tanh(HV contribution)``,
    multiplying the rewards of the next steps."""
    return 0.5 + 1.5 * math.tanh(contribution)
