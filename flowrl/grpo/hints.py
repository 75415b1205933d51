"""Hint-guided rollouts (Scaf-GRPO, Guide): which groups get hints, how a guided rollout enters the group, and which
log-probs its ratio uses. Pure functions; the tier state is `flowrl.grpo.schedules.HintPlanner`.
Sources: docs/papers_llm.md."""

from __future__ import annotations

import torch

from flowrl.grpo.advantages import group_stats


def failed_groups(rewards: torch.Tensor, group_ids: torch.Tensor, *, threshold: float = 0.0) -> torch.Tensor:
    """Samples of "true-hard" groups: every reward of the group is ``<= threshold`` (Scaf-GRPO section 3.2, Guide
    section 3: all rollouts failed). Returns `(B,)` bool."""
    stats = group_stats((rewards.float() > threshold).float(), group_ids)
    return stats.mean == 0


def replace_failed(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    guided_rewards: torch.Tensor,
    guided_group_ids: torch.Tensor,
    *,
    threshold: float = 0.0,
) -> torch.Tensor:
    """Scaf-GRPO's group mixing (arXiv 2510.19807, section 3.3): for every group, the first successful guided rollout
    (reward ``> threshold``) replaces the group's first failed on-policy rollout.

    Args:
        rewards: `(B,)` on-policy rewards.
        group_ids: `(B,)` their group keys.
        guided_rewards: `(H,)` rewards of the hint-guided rollouts.
        guided_group_ids: `(H,)` the group each guided rollout was sampled for.

    Returns:
        `(B,)` int64: for each on-policy row, the index of the guided rollout that replaces it, or -1.
    """
    out = torch.full(rewards.shape, -1, dtype=torch.int64, device=rewards.device)
    used: set[int] = set()
    for h, (g, r) in enumerate(zip(guided_group_ids.tolist(), guided_rewards.tolist(), strict=True)):
        if r <= threshold or g in used:
            continue
        rows = torch.nonzero((group_ids == g) & (rewards <= threshold)).flatten()
        if rows.numel():
            out[rows[0]] = h
            used.add(g)
    return out


def guided_old_logp(plain_old_logp: torch.Tensor, hinted_old_logp: torch.Tensor, guided: torch.Tensor) -> torch.Tensor:
    """Guide's importance correction (arXiv 2506.13923, eq. 5): a guided rollout is trained *as if the hint were
    absent*: the ratio's numerator is ``pi_theta(o_t | q, o_<t)`` (the trainer computes `logp` without the hint) and
    its denominator ``pi_old(o_t | q, h, o_<t)``, the policy that actually sampled it with the hint in context.

    Args:
        plain_old_logp: `(B, T)` old log-probs without the hint (unguided rows).
        hinted_old_logp: `(B, T)` old log-probs with the hint in the context (guided rows).
        guided: `(B,)` bool, True where the row was sampled with a hint.

    Returns:
        `(B, T)` the `old_logp` to put in the `PolicyBatch`.
    """
    return torch.where(guided.bool()[:, None], hinted_old_logp.float(), plain_old_logp.float())
