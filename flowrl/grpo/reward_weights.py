"""Dynamic weights of several reward objectives (slot 1 of the core; arXiv 2509.11452, Lu et al. "Learning to
Optimize Multi-Objective Alignment Through Dynamic Reward Weighting"). The state lives in
`flowrl.grpo.trackers.DynamicRewardWeights`; these are its pure steps."""

from __future__ import annotations

import math

import torch


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
