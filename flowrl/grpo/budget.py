"""Rollout-budget allocation across prompts (upstream of the core: how many samples each prompt gets).

Pure functions of per-prompt statistics; the trainer keeps the statistics (success rates from the previous epoch,
gradient norms from a pre-sampling pass). Sources: docs/papers_llm.md.
"""

from __future__ import annotations

import math

import torch


def knapsack_value(num_rollouts: int, success_rate: float) -> float:
    """Knapsack RL (arXiv 2509.25849, eq. 5): ``Value(N, p) = (1 - p^N - (1 - p)^N) p (1 - p)^2``: the chance that a
    group of N has both outcomes (a non-zero gradient) times the information gain ``p (1 - p)^2``."""
    p = success_rate
    return (1 - p**num_rollouts - (1 - p) ** num_rollouts) * p * (1 - p) ** 2


def knapsack_allocation(success_rates: torch.Tensor, *, budget: int, n_min: int = 2, n_max: int = 64) -> torch.Tensor:
    """Knapsack RL: choose ``N_i in [n_min, n_max]`` maximising ``sum_i Value(N_i, p_i)`` s.t. ``sum_i N_i <= budget``
    (exact dynamic programme over prompts x budget). Budget left over (every value saturated) goes round-robin to the
    prompts with ``p = 0`` (never solved) until they reach ``n_max``, then to the others (the paper's fallback for
    unsolved prompts; round-robin is our reading).

    Args:
        success_rates: `(P,)` per-prompt success rate from the previous epoch.
        budget: total rollouts of the step.
        n_min, n_max: rollouts per prompt.

    Returns:
        `(P,)` int64 rollouts per prompt.
    """
    p = success_rates.detach().double().cpu().tolist()
    n = len(p)
    if not 1 <= n_min <= n_max or budget < n * n_min:
        raise ValueError(
            f"Need 1 <= n_min <= n_max and budget >= P * n_min; got n_min={n_min}, n_max={n_max}, budget={budget}, "
            f"P={n}. Raise the budget or lower n_min."
        )
    spare = budget - n * n_min  # extra rollouts above n_min to distribute
    neg = -math.inf
    best = [0.0] + [neg] * spare  # best[b]: max value using exactly b extra rollouts so far
    choice: list[list[int]] = []
    for pi in p:
        new, pick = [neg] * (spare + 1), [0] * (spare + 1)
        for b in range(spare + 1):
            for extra in range(min(n_max - n_min, b) + 1):
                if best[b - extra] == neg:
                    continue
                v = best[b - extra] + knapsack_value(n_min + extra, pi)
                if v > new[b] + 1e-15:
                    new[b], pick[b] = v, extra
        best = new
        choice.append(pick)
    b = max(range(spare + 1), key=lambda k: (best[k], -k))  # best value, fewest rollouts
    alloc = [0] * n
    for i in range(n - 1, -1, -1):
        alloc[i] = n_min + choice[i][b]
        b -= choice[i][b]
    left = budget - sum(alloc)
    for pool in ([i for i in range(n) if p[i] == 0.0], [i for i in range(n) if p[i] != 0.0]):
        while left > 0 and any(alloc[i] < n_max for i in pool):  # round-robin: unsolved prompts first
            for i in pool:
                if left > 0 and alloc[i] < n_max:
                    alloc[i] += 1
                    left -= 1
    return torch.tensor(alloc, dtype=torch.int64)


def gvm_allocation(
    accept_rates: torch.Tensor, grad_norms: torch.Tensor, *, budget: int, alpha: float = 1e-3, beta: float = 2.0
) -> torch.Tensor:
    """GVM-RAFT (arXiv 2505.02391, Theorem 1; RLHFlow/GVM `stage_2_calc_sample_size.py`): sample sizes minimising the
    gradient variance, ``n_i ∝ G_i / sqrt(p_i + alpha / p_i^(beta - 1))``; ``n_i = 0`` where ``p_i = 0`` or
    ``G_i = 0``; scaled to ``budget`` and rounded so the sum is exactly ``budget`` (largest remainders).

    Args:
        accept_rates: `(P,)` acceptance (success) rate ``p_i`` from pre-sampling (code: 8 samples per prompt).
        grad_norms: `(P,)` mean gradient norm ``G_i`` of the accepted samples' log-likelihood.
        budget: total samples.
        alpha, beta: code defaults 1e-3 and 2.

    Returns:
        `(P,)` int64 sample sizes summing to `budget` (all 0 if no prompt is usable).
    """
    p, g = accept_rates.double(), grad_norms.double()
    ok = (p > 0) & (g > 0)
    raw = torch.where(ok, g / (p + alpha / p.clamp(min=1e-300) ** (beta - 1)).sqrt(), torch.zeros_like(p))
    if raw.sum() <= 0:
        return torch.zeros_like(p, dtype=torch.int64)
    target = raw / raw.sum() * budget
    base = target.floor()
    rest = int(budget - base.sum())
    base[torch.argsort(-(target - base), stable=True)[:rest]] += 1
    return base.to(torch.int64)


def prioritized_prompt_weights(values: torch.Tensor, *, eps: float = 0.05) -> torch.Tensor:
    """SPO prioritised prompt sampling (arXiv 2509.13232, section 3.3): ``w(x) ∝ sqrt(v (1 - v)) + eps`` with ``v`` the
    tracked success probability, so prompts the policy neither always solves nor always fails are drawn more often.
    ``eps = 0.05`` is our reading (docs/papers_llm.md).

    Args:
        values: `(P,)` tracked values in [0, 1] (`trackers.BetaValueTracker.values`).

    Returns:
        `(P,)` float32 sampling probabilities summing to 1.
    """
    v = values.float().clamp(0.0, 1.0)
    w = (v * (1 - v)).sqrt() + eps
    return w / w.sum()
