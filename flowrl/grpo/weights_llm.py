"""Per-token weights of the LLM GRPO variants (slot 5 of the core): detached `(B, T)` multipliers."""

from __future__ import annotations

import math

import torch


def _shared_runs(a: torch.Tensor, b: torch.Tensor) -> tuple[int, int]:
    """Lengths of the common prefix and of the common suffix of two token-id sequences."""
    n = min(a.numel(), b.numel())
    eq = (a[:n] == b[:n]).int()
    prefix = int(eq.cumprod(0).sum())
    eq_end = (a.flip(0)[:n] == b.flip(0)[:n]).int()
    return prefix, int(eq_end.cumprod(0).sum())


def conflict_token_weights(
    token_ids: torch.Tensor,
    mask: torch.Tensor,
    adv: torch.Tensor,
    group_ids: torch.Tensor,
    *,
    positive_weight: float = 2.0,
    negative_weight: float = 0.0,
) -> torch.Tensor:
    """GTPO conflict-token weights (arXiv 2508.03772, section 3.1; winstonsmith1897/GTPO `gtpo_training.py`).

    A token is a conflict token when a positive (A > 0) and a negative (A < 0) completion of the same group share
    it: the contiguous run of equal tokens from the start (same positions) and from the end (aligned at each
    completion's last token), as in the code. Conflict tokens weigh ``positive_weight`` (2) in positive completions
    and ``negative_weight`` (0: no push-down) in negative ones; every other token weighs 1.

    Args:
        token_ids: `(B, T)` completion token ids.
        mask: `(B, T)` valid tokens (left-aligned completions).
        adv: `(B,)` advantages.
        group_ids: `(B,)` integer group keys.

    Returns:
        `(B, T)` float32 detached weights.
    """
    w = torch.ones(token_ids.shape, dtype=torch.float32, device=token_ids.device)
    lengths = mask.sum(-1).long().tolist()
    a = adv.float()
    for g in torch.unique(group_ids):
        idx = torch.nonzero(group_ids == g).flatten().tolist()
        pos = [i for i in idx if a[i] > 0]
        neg = [j for j in idx if a[j] < 0]
        for i in pos:
            for j in neg:
                seq_i, seq_j = token_ids[i, : lengths[i]], token_ids[j, : lengths[j]]
                pre, suf = _shared_runs(seq_i, seq_j)
                for row, n, weight in ((i, lengths[i], positive_weight), (j, lengths[j], negative_weight)):
                    w[row, :pre] = weight
                    if suf:
                        w[row, n - suf : n] = weight
    return w


def group_kl_token_weights(
    logprobs: torch.Tensor, mask: torch.Tensor, group_ids: torch.Tensor, *, alpha: float = 1.4
) -> torch.Tensor:
    """TW-GRPO token weights (arXiv 2505.24718, section 3.1; longmalongma/TW-GRPO `grpo_trainer.py`).

    At each position t of a group, ``d_{j,v} = mean_k logp_{k,t,v} - logp_{j,t,v}`` (vocabulary item v, members j, k;
    past a member's end its distribution is uniform), ``D_t = mean_j sum_v [exp(d_{j,v}) - d_{j,v} - 1]``; the
    positions' ``D_t`` are min-max normalised over the group's positions and ``w_t = 1 + (alpha - 1) norm_t``,
    shared by every member. Positions where members disagree most weigh up to ``alpha``.

    Args:
        logprobs: `(B, T, V)` full-vocabulary log-probs of each completion position.
        mask: `(B, T)` valid tokens.
        group_ids: `(B,)` integer group keys.
        alpha: largest weight (code: 1.4).

    Returns:
        `(B, T)` float32 detached weights.
    """
    lp = logprobs.detach().float()
    vocab = lp.shape[-1]
    uniform = torch.full_like(lp, -math.log(vocab))
    lp = torch.where(mask.bool()[..., None], lp, uniform)  # (B, T, V)
    w = torch.ones(mask.shape, dtype=torch.float32, device=lp.device)
    for g in torch.unique(group_ids):
        rows = torch.nonzero(group_ids == g).flatten()
        span = int(mask[rows].sum(-1).max())  # the group's longest completion
        if span == 0:
            continue
        x = lp[rows, :span]  # (G, S, V)
        d = x.mean(0, keepdim=True) - x
        div = (d.exp() - d - 1).sum(-1).mean(0)  # (S,)
        lo, hi = div.min(), div.max()
        norm = (div - lo) / (hi - lo) if hi > lo else torch.zeros_like(div)
        w[rows, :span] = 1 + (alpha - 1) * norm
    return w
