"""Loss reductions (slot 6 of the core): per-token loss `(B, T)` -> scalar.

Normalisers are *passed in* as a `Normalizer`, computed once per optimizer step over every micro-batch and rank
(`normalizer(mask_of_the_whole_step)`), never from the micro-batch inside the loss. Summing the reduced losses of
the micro-batches then equals the reduction of the whole batch, for every reduction here (verl `agg_loss`, TRL
`num_items_in_batch`), so the effective learning rate does not drift with micro-batching.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class Normalizer(NamedTuple):
    """Global counts of one optimizer step (all micro-batches, all ranks)."""

    num_tokens: torch.Tensor | float  # valid (mask = 1) tokens / trained edges
    num_sequences: torch.Tensor | float  # sequences / trajectories with at least one valid token
    num_micro_batches: int = 1  # used only by `token_mean_local` (BNPO)


def normalizer(mask: torch.Tensor, *, num_micro_batches: int = 1) -> Normalizer:
    """Counts of a full optimizer step's `(B, T)` mask (concatenate micro-batches, sum over ranks yourself)."""
    m = mask.float()
    return Normalizer(m.sum(), (m.sum(-1) > 0).float().sum(), num_micro_batches)


def _masked(loss: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # where, not multiply: a NaN/inf in a masked-out position must not leak into the sum
    return torch.where(mask.bool(), loss.float(), torch.zeros((), dtype=torch.float32, device=loss.device))


def token_mean(loss: torch.Tensor, mask: torch.Tensor, *, norm: Normalizer) -> torch.Tensor:
    """``sum_{i,t} m l / N_tokens`` with the global token count (DAPO eq. 12 / verl `token-mean`)."""
    return _masked(loss, mask).sum() / _clamp1(norm.num_tokens)


def token_mean_local(loss: torch.Tensor, mask: torch.Tensor, *, norm: Normalizer) -> torch.Tensor:
    """``sum m l / (tokens in this micro-batch) / n_micro`` (TRL `bnpo`): equals `token_mean` only when every
    micro-batch holds the same number of tokens."""
    return _masked(loss, mask).sum() / mask.float().sum().clamp(min=1) / norm.num_micro_batches


def seq_mean_token_mean(loss: torch.Tensor, mask: torch.Tensor, *, norm: Normalizer) -> torch.Tensor:
    """``sum_i (sum_t m l / |o_i|) / N_seq`` (original GRPO, DeepSeekMath eq. 3 / verl `seq-mean-token-mean`)."""
    per_seq = _masked(loss, mask).sum(-1) / mask.float().sum(-1).clamp(min=1)  # (B,)
    return per_seq.sum() / _clamp1(norm.num_sequences)


def seq_mean_token_sum(loss: torch.Tensor, mask: torch.Tensor, *, norm: Normalizer) -> torch.Tensor:
    """``sum_i sum_t m l / N_seq`` (verl `seq-mean-token-sum`)."""
    return _masked(loss, mask).sum() / _clamp1(norm.num_sequences)


def constant_norm(loss: torch.Tensor, mask: torch.Tensor, *, norm: Normalizer, max_len: int) -> torch.Tensor:
    """``sum_{i,t} m l / (N_seq * max_len)`` (Dr. GRPO, arXiv 2503.20783 eq. 4: a constant, length-free normaliser).

    `max_len` is the generation budget (TRL `max_completion_length`), not the batch's padded length.
    """
    return _masked(loss, mask).sum() / (_clamp1(norm.num_sequences) * max_len)


def _clamp1(x: torch.Tensor | float) -> torch.Tensor | float:
    return x.clamp(min=1) if isinstance(x, torch.Tensor) else max(float(x), 1.0)
