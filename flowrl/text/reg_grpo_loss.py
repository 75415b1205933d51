"""Reg-GRPO's whole loss (DeepVideo-R1, arXiv 2506.07464), the `reg_grpo` entry of `hooks.WHOLE_LOSSES`: the
variant's advantage regressed by the centred sequence log-ratio. The targets are `flowrl.grpo.reg_grpo`."""

from __future__ import annotations

import torch

from flowrl.text.hook_types import WholeLoss, WholeLossInput


def reg_grpo(*, beta: float = 1.0) -> WholeLoss:
    """Reg-GRPO (DeepVideo-R1, arXiv 2506.07464; `flowrl.grpo.reg_grpo`): regress the group-normalised advantage
    by the centred sequence log-ratio, no clip::

        A_hat_i = (l_i - mean_{j in group} l_j) / beta,   l_i = sum_t mask_it (logp_it - old_logp_it)
        L = sum_i (A_i - A_hat_i)^2 / (rows of the step)

    ``A_i`` is the variant's advantage (per completion; a per-token one is averaged over the completion's tokens);
    the groups whose reward.names[0] outcomes are all equal are not forwarded (they add 0 to L at the rollout
    policy). beta 1 [?]."""
    if beta <= 0:
        raise ValueError(f"reg_grpo beta must be > 0, got {beta}.")
    from flowrl.grpo.reg_grpo import reg_grpo_targets

    def loss(x: WholeLossInput) -> torch.Tensor:
        if x.adv is None:
            raise ValueError("hooks.whole_loss=reg_grpo needs the advantages in WholeLossInput (the trainer).")
        m = x.mask.float()
        adv = x.adv if x.adv.ndim == 1 else (x.adv * m).sum(-1) / m.sum(-1).clamp(min=1)  # (M,)
        target = reg_grpo_targets(x.logp, x.old_logp, m, x.group_ids, beta=beta)  # (M,)
        group_size = int(torch.unique(x.group_ids, return_counts=True)[1][0])
        return ((adv - target) ** 2).sum() / (x.num_questions * group_size)

    return WholeLoss(loss, None)
