"""Segment-level credit (Segment Policy Optimization, arXiv 2505.23564, SPO-chain): split a completion at
low-probability tokens, estimate the value at each segment start by Monte-Carlo continuations (the trainer's
pluggable value function), and give each segment ``A_k = V(s_{k+1}) - V(s_k)``. Sources: docs/papers_llm.md."""

from __future__ import annotations

from typing import NamedTuple

import torch


class Segments(NamedTuple):
    """Segmentation of a batch of completions, all `(B, T)` except `count`."""

    ids: torch.Tensor  # int64 segment index of each token (0 first), -1 off the mask
    cutpoints: torch.Tensor  # bool: tokens sampled with probability below the threshold
    starts: torch.Tensor  # bool: first token of each segment (where V(s_k) is estimated, before that token)
    count: torch.Tensor  # (B,) int64 segments per completion


def cutpoint_segments(
    old_logp: torch.Tensor, mask: torch.Tensor, *, prob_threshold: float = 0.9, interval: int = 5
) -> Segments:
    """SPO-chain segmentation: cutpoints are tokens whose sampling probability ``exp(old_logp) < prob_threshold``;
    every ``interval``-th cutpoint (the paper's "interval 5 / 10") starts a new segment; the first starts at t = 0.

    ``prob_threshold = 0.9`` is our reading (docs/papers_llm.md).

    Args:
        old_logp: `(B, T)` log-probs of the sampled tokens under the sampling policy.
        mask: `(B, T)` valid tokens (left-aligned).
        prob_threshold: probability below which a token is a cutpoint.
        interval: cutpoints per segment (>= 1).
    """
    if interval < 1 or not 0.0 < prob_threshold <= 1.0:
        raise ValueError(f"Need interval >= 1 and 0 < prob_threshold <= 1, got {interval}, {prob_threshold}.")
    valid = mask.bool()
    cut = valid & (old_logp.detach().float().exp() < prob_threshold)  # (B, T)
    rank = cut.long().cumsum(-1)  # cutpoints up to and including t
    boundary = cut & (rank % interval == 0)  # every interval-th cutpoint opens a segment
    first = torch.zeros_like(valid)
    first[:, 0] = valid[:, 0]
    starts = first | boundary
    ids = torch.where(valid, starts.long().cumsum(-1) - 1, torch.full_like(rank, -1))
    return Segments(ids, cut, starts, starts.long().sum(-1))


def segment_advantages(values: torch.Tensor, segments: Segments) -> torch.Tensor:
    """``A_{i,t} = V_i[k + 1] - V_i[k]`` for the segment ``k`` holding token t (SPO eq. 4).

    Args:
        values: `(B, S + 1)`: ``V_i[k]`` the Monte-Carlo value at the start of segment k (k < count_i) and
            ``V_i[count_i]`` the completion's reward; entries past that are ignored.
        segments: from `cutpoint_segments`.

    Returns:
        `(B, T)` float32 per-token advantages, 0 off the mask.
    """
    if bool((segments.count + 1 > values.shape[1]).any()):
        raise ValueError(
            f"`values` has {values.shape[1]} columns but a completion has {int(segments.count.max())} segments: pass "
            "one value per segment start plus the final reward."
        )
    k = segments.ids.clamp(min=0)
    v = values.float()
    adv = v.gather(1, k + 1) - v.gather(1, k)  # (B, T)
    return torch.where(segments.ids >= 0, adv, torch.zeros_like(adv))


def probability_mask(segments: Segments, mask: torch.Tensor) -> torch.Tensor:
    """SPO's "probability mask": only the low-probability cutpoint tokens carry their segment's advantage."""
    return mask * segments.cutpoints.to(mask.dtype)
