"""Reg-GRPO (DeepVideo-R1, arXiv 2506.07464, Sec. 3): GRPO as a regression of the advantage, no clipping.

The group-normalised advantage ``A_i`` is regressed directly by the policy's own estimate, the centred sequence
log-ratio to the rollout policy scaled by ``1 / beta`` [?]:

    ``A_hat_i = (l_i - mean_{j in group} l_j) / beta``,  ``l_i = sum_t mask_it (logp_it - old_logp_it)``
    ``L = mean_i (A_i - A_hat_i)^2``

At the rollout policy ``l = 0`` and the gradient is ``-2/(beta N) sum_i (A_i - 0) grad(l_i - mean l)``: GRPO's
direction without the clip, whose size shrinks as the log-ratios come to match the advantages (the regression target
bounds the step instead of the clip). ``beta`` [?] default 1.
"""

from __future__ import annotations

import torch


def reg_grpo_targets(
    logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor, group_ids: torch.Tensor, *, beta: float = 1.0
) -> torch.Tensor:
    """`(N,)` ``A_hat``: the centred (per group) sequence log-ratios divided by `beta`."""
    seq = ((logp - old_logp) * mask).sum(-1)  # (N,)
    uniq, inv = torch.unique(group_ids, return_inverse=True)
    means = torch.zeros(len(uniq), dtype=seq.dtype, device=seq.device).index_add_(0, inv, seq)
    counts = torch.zeros(len(uniq), dtype=seq.dtype, device=seq.device).index_add_(0, inv, torch.ones_like(seq))
    return (seq - (means / counts)[inv]) / beta


def reg_grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    group_ids: torch.Tensor,
    *,
    beta: float = 1.0,
) -> torch.Tensor:
    """``mean_i (A_i - A_hat_i)^2`` over the `(N,)` sequences (logp / old_logp / mask `(N, T)`)."""
    return ((adv - reg_grpo_targets(logp, old_logp, mask, group_ids, beta=beta)) ** 2).mean()
