"""Reward shaping of the LLM GRPO variants (slot 1 of the core): per-sample rewards -> shaped rewards `(B,)`.

Each function sees the whole batch (groups, lengths, likelihoods) and runs before the advantage estimator.
Sources and our readings: docs/papers_llm.md.
"""

from __future__ import annotations

import math

import torch

from flowrl.grpo.advantages import group_stats


def _group_min_max(x: torch.Tensor, group_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    _, inv = torch.unique(group_ids, return_inverse=True)  # (B,)
    n = int(inv.max()) + 1
    lo = torch.full((n,), math.inf, device=x.device).scatter_reduce(0, inv, x, reduce="amin")
    hi = torch.full((n,), -math.inf, device=x.device).scatter_reduce(0, inv, x, reduce="amax")
    return lo[inv], hi[inv]


def length_aware_rewards(correct: torch.Tensor, lengths: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """Kimi k1.5 length reward (arXiv 2501.12599, section 2.3.3) added to the 0/1 correctness.

    ``lam_i = 0.5 - (L_i - L_min) / (L_max - L_min)`` over the group's lengths (0 when all lengths are equal);
    ``R_i = c_i + lam_i`` if correct, ``R_i = c_i + min(0, lam_i)`` otherwise.

    Args:
        correct: `(B,)` 0/1 correctness.
        lengths: `(B,)` completion lengths in tokens.
        group_ids: `(B,)` integer group keys.
    """
    c, L = correct.float(), lengths.float()
    lo, hi = _group_min_max(L, group_ids)
    lam = torch.where(hi > lo, 0.5 - (L - lo) / (hi - lo).clamp(min=1e-12), torch.zeros_like(L))
    return c + torch.where(c > 0, lam, lam.clamp(max=0))


def grpo_lambda_rewards(
    correct: torch.Tensor, lengths: torch.Tensor, group_ids: torch.Tensor, *, top_fraction: float = 0.2
) -> torch.Tensor:
    """GRPO-λ (arXiv 2505.18086, section 3): length-aware rewards only for the groups that are already accurate.

    Groups are ranked by their correctness ratio ``c_q = #correct / G``; the top ``ceil(top_fraction n_groups)``
    groups (ties broken by group order) get `length_aware_rewards`, every other group keeps the 0/1 reward.
    ``top_fraction`` (the paper's λ) default 0.2 and "added to" the 0/1 reward are our reading.

    Args:
        correct: `(B,)` 0/1 correctness.
        lengths: `(B,)` completion lengths.
        group_ids: `(B,)` integer group keys.
        top_fraction: fraction of the batch's groups that get the length penalty, in [0, 1].

    Returns:
        `(B,)` float32 rewards.
    """
    if not 0.0 <= top_fraction <= 1.0:
        raise ValueError(f"`top_fraction` (GRPO-λ's λ) must be in [0, 1], got {top_fraction}.")
    keys, inv = torch.unique(group_ids, return_inverse=True)
    ratio = group_stats(correct.float(), group_ids).mean  # (B,) c_q per sample
    per_group = torch.zeros(keys.numel(), device=ratio.device).scatter(0, inv, ratio)  # (n_groups,)
    n_top = math.ceil(top_fraction * keys.numel())
    top = torch.zeros(keys.numel(), dtype=torch.bool, device=ratio.device)
    top[torch.argsort(-per_group, stable=True)[:n_top]] = True
    return torch.where(top[inv], length_aware_rewards(correct, lengths, group_ids), correct.float())


def unlikeliness_rewards(
    rewards: torch.Tensor, seq_logp: torch.Tensor, group_ids: torch.Tensor, *, beta_rank: float = 0.25
) -> torch.Tensor:
    """Rewarding the Unlikely (arXiv 2506.02355, eq. 3): ``r_i = R_i (1 - beta_rank (G - rank_i) / G)``.

    ``rank_i`` is 1 for the group's most likely sample under the sampling policy (``seq_logp``: mean token log-prob,
    as the release code) and G for the least likely, so correct but likely samples are rewarded less.

    Args:
        rewards: `(B,)` rewards.
        seq_logp: `(B,)` sequence likelihood score (higher = more likely).
        group_ids: `(B,)` integer group keys.
        beta_rank: penalty strength (release: 0.25).
    """
    r = rewards.float()
    rank = torch.zeros_like(r)
    size = torch.zeros_like(r)
    for g in torch.unique(group_ids):
        idx = torch.nonzero(group_ids == g).flatten()
        order = idx[torch.argsort(-seq_logp[idx].float(), stable=True)]  # most likely first
        rank[order] = torch.arange(1, idx.numel() + 1, dtype=torch.float32, device=r.device)
        size[idx] = float(idx.numel())
    return r * (1 - beta_rank * (size - rank) / size)


def budget_rewards(
    correct: torch.Tensor, lengths: torch.Tensor, *, budget: float, length_weight: float = 0.5
) -> torch.Tensor:
    """Train Long, Think Short (arXiv 2508.08940): correctness plus a length-efficiency term against the current
    token budget ``B(s)`` (`flowrl.grpo.schedules.ExponentialBudget`).

    ``R_i = c_i + length_weight * c_i * clip(1 - L_i / B, -1, 1)``: a correct answer under budget earns up to
    ``length_weight`` more, one over budget loses up to ``length_weight``. The exact shape and weights are not in the
    sources we could read: this form and ``length_weight = 0.5`` are our reading (docs/papers_llm.md).

    Args:
        correct: `(B,)` 0/1 correctness.
        lengths: `(B,)` completion lengths in tokens.
        budget: the step's token budget (> 0).
        length_weight: weight of the efficiency term.
    """
    if budget <= 0:
        raise ValueError(f"`budget` must be > 0 tokens, got {budget}.")
    c = correct.float()
    return c + length_weight * c * (1 - lengths.float() / budget).clamp(-1.0, 1.0)


def posterior_rewards(format_reward: torch.Tensor, outcome: torch.Tensor, thinking: torch.Tensor) -> torch.Tensor:
    """Posterior-GRPO (arXiv 2508.05170, eq. 4): ``R = R_format + R_outcome + R_outcome * R_think``.

    The thinking reward (a process score in [0, 1] from a reasoning reward model, or any pluggable scorer) counts
    only when the outcome is correct, which keeps the policy from hacking the process scorer.

    Args:
        format_reward: `(B,)` format reward.
        outcome: `(B,)` 0/1 outcome (tests pass / answer correct).
        thinking: `(B,)` process score in [0, 1].
    """
    if bool(((thinking < 0) | (thinking > 1)).any()):
        raise ValueError("`thinking` scores must lie in [0, 1]: rescale the process scorer's output.")
    return format_reward.float() + outcome.float() + outcome.float() * thinking.float()


def soft_choice_rewards(predicted: list[set], gold: list[set]) -> torch.Tensor:
    """TW-GRPO soft multi-choice reward (arXiv 2505.24718, eq. 6): 1 if the predicted option set equals the gold set,
    ``|pred| / |gold|`` if it is a non-empty proper subset, 0 otherwise (any wrong option).

    Args:
        predicted: one set of chosen options per completion.
        gold: the correct option set of each completion's question.

    Returns:
        `(B,)` float32.
    """
    if len(predicted) != len(gold):
        raise ValueError(f"Got {len(predicted)} predictions for {len(gold)} gold sets: pass one of each per sample.")
    out = [1.0 if p == g else (len(p) / len(g) if p and p < g else 0.0) for p, g in zip(predicted, gold, strict=True)]
    return torch.tensor(out, dtype=torch.float32)
