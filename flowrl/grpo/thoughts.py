"""TP-GRPO's thought-level process rewards (arXiv 2507.23317, He et al., "Good Learners Think Their Thinking:
Generative PRM Makes Large Reasoning Model More Efficient Math Learner"; slots 1 and 2 of the core: per-token
process rewards -> per-token advantages `(B, T)`).

The method has three parts (paper abstract and section 3 overview):

1. a process scorer judges every reasoning *step* correct or incorrect (the paper: a generative PRM that reads
   intrinsic signals of the solution, such as self-corrections, instead of solving the problem itself). Here it is
   pluggable: the caller hands in a `(B, T)` 0/1 label per token (the label of the step the token belongs to);
2. contiguous steps with the same judgement merge into one *thought*, the unit of credit (`thought_segments`);
3. a *capability-adaptive* reward: what a correct thought earns and an incorrect thought costs depends on the
   policy's current proficiency on the problem (`capability_weights`, `thought_rewards`), so a weak policy is not
   punished for trial and error and a strong one is pushed to remove its remaining mistakes.

The paper's exact reward values and how the process reward enters the advantage are not in the sources we could
read (docs/papers_llm.md, marked [?]): the weight function is a keyword hook and ``process_weight`` a keyword, with
our reading as defaults. The paper's off-policy sample reuse is not part of this file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from flowrl.grpo.advantages import group_advantages, group_stats


class Thoughts(NamedTuple):
    """Thought segmentation of a batch of completions."""

    ids: torch.Tensor  # (B, T) long: index of the token's thought within its completion, -1 off the mask
    correct: torch.Tensor  # (B, T) bool: the judgement of the token's thought (False off the mask)
    count: torch.Tensor  # (B,) long: number of thoughts per completion


def thought_segments(step_correct: torch.Tensor, mask: torch.Tensor) -> Thoughts:
    """Merge contiguous equally-judged steps into thoughts: a new thought starts at a completion's first valid token
    and wherever the label differs from the previous valid token's label.

    Args:
        step_correct: `(B, T)` 0/1 (or bool) judgement of the step each token belongs to.
        mask: `(B, T)` valid tokens (a completion's tokens; padding 0).

    Returns:
        `Thoughts` with `(B, T)` ids and labels and `(B,)` counts.
    """
    if step_correct.shape != mask.shape:
        raise ValueError(
            f"`step_correct` {tuple(step_correct.shape)} and `mask` {tuple(mask.shape)} must have the same (B, T) "
            "shape: one step label per completion token."
        )
    valid = mask > 0
    label = (step_correct > 0) & valid
    # label and validity of the previous valid token, carried over padding gaps
    prev_label = torch.zeros_like(label[:, 0])
    seen = torch.zeros_like(valid[:, 0])
    starts = torch.zeros_like(valid)
    for t in range(valid.shape[1]):
        v = valid[:, t]
        starts[:, t] = v & (~seen | (label[:, t] != prev_label))
        prev_label = torch.where(v, label[:, t], prev_label)
        seen = seen | v
    ids = torch.where(valid, starts.long().cumsum(-1) - 1, torch.full_like(starts, -1, dtype=torch.long))
    return Thoughts(ids=ids, correct=label, count=starts.long().sum(-1))


WeightFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def capability_weights(proficiency: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Our reading of the capability-adaptive reward ([?] in docs/papers_llm.md): with proficiency ``p`` (the
    group's accuracy on the problem), a correct thought earns ``w+ = 1 - p`` and an incorrect one costs
    ``w- = p``. A problem the policy rarely solves rewards correct partial reasoning and barely punishes mistakes
    (explore); a problem it usually solves rewards little and punishes the remaining mistakes (exploit).

    Args:
        proficiency: `(B,)` in [0, 1].

    Returns:
        `(w_plus, w_minus)`, each `(B,)` float32.
    """
    p = proficiency.float()
    return 1.0 - p, p


def thought_rewards(
    thoughts: Thoughts, proficiency: torch.Tensor, *, weights: WeightFn = capability_weights
) -> torch.Tensor:
    """Per-token process reward: every token of a correct thought gets ``+w+(p)``, every token of an incorrect
    thought ``-w-(p)``, padding 0.

    Args:
        thoughts: from `thought_segments`.
        proficiency: `(B,)` the policy's proficiency on each completion's problem, in [0, 1] (`group_accuracy`).
        weights: the capability-adaptive weight function ``p -> (w+, w-)`` (default `capability_weights`).

    Returns:
        `(B, T)` float32.
    """
    p = proficiency.float()
    if bool(((p < 0) | (p > 1)).any()):
        raise ValueError("`proficiency` must lie in [0, 1] (a success rate): pass the group accuracy.")
    w_plus, w_minus = weights(p)
    valid = thoughts.ids >= 0
    per_token = torch.where(thoughts.correct, w_plus.float()[:, None], -w_minus.float()[:, None])  # (B, T)
    return torch.where(valid, per_token, torch.zeros_like(per_token))


def group_accuracy(outcome: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """Proficiency of the policy on each sample's problem: the mean 0/1 outcome of its group, `(B,)`."""
    return group_stats(outcome.float(), group_ids).mean


def tp_grpo_advantages(
    outcome: torch.Tensor,
    group_ids: torch.Tensor,
    process: torch.Tensor,
    mask: torch.Tensor,
    *,
    process_weight: float = 0.5,
) -> torch.Tensor:
    """Per-token advantage of TP-GRPO as we read it: the GRPO outcome advantage of the completion plus the weighted
    thought-level process reward of the token, ``A_{i,t} = (R_i - mean_g R) / std_g R + lambda r_{i,t}``, 0 off the
    mask. How the paper combines the two is [?]: ``process_weight`` (lambda, 0.5) is ours.

    Args:
        outcome: `(B,)` outcome rewards.
        group_ids: `(B,)` integer group keys.
        process: `(B, T)` from `thought_rewards`.
        mask: `(B, T)` valid tokens.
        process_weight: lambda.

    Returns:
        `(B, T)` float32.
    """
    adv = group_advantages(outcome.float(), group_ids)  # (B,)
    return (adv[:, None] + process_weight * process.float()) * (mask > 0).float()
