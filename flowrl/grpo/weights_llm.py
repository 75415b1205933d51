"""Per-token weights of the LLM GRPO variants (slot 5 of the core): detached `(B, T)` multipliers."""

from __future__ import annotations

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
