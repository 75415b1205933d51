"""GRPO-CARE's consistency bonus (arXiv 2506.16141, Sec. 4): reward reasoning that leads to its answer.

A slowly-evolving reference model (an EMA of the policy, ``theta_ref <- m theta_ref + (1 - m) theta``, m [?] default
0.995) scores, for each completion i of a group, the likelihood of its answer given the question, the image and its
own reasoning: ``c_i = exp(mean_t log pi_ref(answer_t | q, image, think_i, answer_<t))``. Among the group's correct
completions, those whose ``c_i`` is at least the mean of their correct peers get a bonus:

    ``b_i = lam 1[r_i = 1] 1[c_i >= mean_{j: r_j = 1} c_j]``       (lam [?], default 0.5)

and the trained reward is ``r_i + b_i``; GRPO-CARE drops the KL term (kl_beta 0). The bonus compares peers, so it
does not depend on the scale of the likelihoods. Our reading of the paper's adaptive bonus; the exact form is a hook.
"""

from __future__ import annotations

import torch


def consistency_bonus(
    correct: torch.Tensor, likelihood: torch.Tensor, group_ids: torch.Tensor, *, lam: float = 0.5
) -> torch.Tensor:
    """`(N,)` bonus: ``lam`` for correct rows whose `likelihood` is >= the mean over the group's correct rows."""
    bonus = torch.zeros_like(likelihood, dtype=torch.float32)
    ok = correct.bool()
    for g in torch.unique(group_ids):
        rows = (group_ids == g) & ok
        if rows.any():
            mean = likelihood[rows].float().mean()
            bonus[rows & (likelihood.float() >= mean)] = lam
    return bonus


@torch.no_grad()
def ema_update(reference: torch.nn.Module, policy: torch.nn.Module, *, momentum: float = 0.995) -> None:
    """``theta_ref <- m theta_ref + (1 - m) theta`` for every parameter (same architecture)."""
    for r, p in zip(reference.parameters(), policy.parameters(), strict=True):
        r.mul_(momentum).add_(p.detach(), alpha=1 - momentum)
