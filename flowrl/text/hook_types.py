"""What each extension point of the text trainer (`flowrl/text/hooks.py`) sees and returns, and how a hook names a
helper function (`resolve`). The hooks themselves live in `hooks.py` and its concept modules (`care`, `reg_grpo_loss`,
`group_sizes`, `hints`); this module imports none of them, so each can import its input type from here."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from flowrl.grpo.registry import lookup
from flowrl.text.logprobs import TokenLogProbs


# reward shaping (hooks.shaping)
class ShapingInput(NamedTuple):
    """What a reward-shaping hook sees of one step (N = sampled completions, C = completion positions)."""

    rewards: torch.Tensor  # (N, K) one column per reward function
    total: torch.Tensor  # (N,) the configured weighted sum (reward.weights)
    outcome: torch.Tensor  # (N,) column 0 of `rewards`: the verifier's outcome (0/1 for the shapers that need it)
    lengths: torch.Tensor  # (N,) completion lengths in tokens
    terminated: torch.Tensor  # (N,) bool: ended with EOS or a stop string
    group_ids: torch.Tensor  # (N,) group keys
    mask: torch.Tensor  # (N, C) completion tokens
    texts: list[str]  # decoded completions (up to EOS)
    tokens: list[list[str]]  # each completion's tokens as strings (EOS included), for step scorers
    answers: list[str]  # each completion's task answer
    step: int
    max_new_tokens: int
    sampling: Callable[[], TokenLogProbs]  # no-grad log-probs and entropies of the sampled tokens (computed once)
    policy_gradient: Callable[[torch.Tensor], torch.Tensor]  # (N,) rewards -> flat GRPO-loss gradient, output head
    model: torch.nn.Module | None = None  # the policy model (GRPO-CARE keeps an EMA copy of it)
    logprobs_under: Callable[[torch.nn.Module], TokenLogProbs] | None = None  # the rollout scored by another model


class Shaped(NamedTuple):
    total: torch.Tensor  # (N,) the reward the variant's advantage function sees
    token_adv: torch.Tensor | None = None  # (N, C) added to the advantage of each token (TP-GRPO's process part)


ShapeFn = Callable[[ShapingInput], Shaped]


def binary_outcome(x: ShapingInput, hook: str) -> torch.Tensor:
    """The verifier's outcome as a float `(N,)` 0/1 tensor, for the shapers whose equation needs a correct/wrong."""
    if not bool(((x.outcome == 0) | (x.outcome == 1)).all()):
        raise ValueError(
            f"hooks.shaping={hook} needs a 0/1 verifier outcome in the first reward column (reward.names[0], e.g. "
            f"exact_match_eos), got values {sorted(set(x.outcome.tolist()))[:5]}. Put the verifier first."
        )
    return x.outcome.float()


def resolve(name: str, table: dict[str, Callable], *, what: str) -> Callable:
    """`table[name]`, or the function ``package.module:function``."""
    return lookup(name, table, what=what, path_form="package.module:function")


# token weights / mask (hooks.token_weights, hooks.token_mask)
class TokenInput(NamedTuple):
    adv: torch.Tensor  # (N,) or (N, C) advantages
    completion_ids: torch.Tensor  # (N, C)
    mask: torch.Tensor  # (N, C) tokens in the loss
    group_ids: torch.Tensor  # (N,)
    step: int
    sampling: Callable[[], TokenLogProbs]  # no-grad log-probs and entropies of the sampled tokens
    full_logprobs: Callable[[], torch.Tensor]  # (N, C, V) full-vocabulary log-probs of the sampling policy
    outcome: torch.Tensor  # (N,) reward.names[0]
    mc_values: Callable[[list[tuple[int, int]], int], torch.Tensor]  # [(row, t)], n -> mean outcome of n continuations


class TokenOut(NamedTuple):
    adv: torch.Tensor  # (N,) or (N, C)
    weights: torch.Tensor | None  # (N, C) detached per-token weights (PolicyBatch.weights)


# regularisers (hooks.regularizer)
class RegularizerInput(NamedTuple):
    logp: torch.Tensor  # (M, C) with grad
    old_logp: torch.Tensor  # (M, C)
    ref_logp: torch.Tensor | None  # (M, C) reference (or SALSA soup) log-probs, when the regulariser needs them
    teacher_logp: torch.Tensor | None  # (M, C) teacher log-probs (KDRL)
    adv: torch.Tensor  # (M,) or (M, C)
    mask: torch.Tensor  # (M, C)
    outcome: torch.Tensor  # (M,)


# whole losses (hooks.whole_loss)
class WholeLossInput(NamedTuple):
    logp: torch.Tensor  # (M, C) with grad
    old_logp: torch.Tensor  # (M, C)
    mask: torch.Tensor  # (M, C)
    outcome: torch.Tensor  # (M,) 0/1
    group_ids: torch.Tensor  # (M,) whole groups only
    pos_weights: torch.Tensor | None  # (M,) DRPO's weights of the correct responses
    num_questions: int  # groups of the whole step (all ranks)
    adv: torch.Tensor | None = None  # (M,) or (M, C) the variant's advantages (Reg-GRPO's regression target)


class WholeLoss(NamedTuple):
    loss: Callable[[WholeLossInput], torch.Tensor]
    pos_weights: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor] | None  # lengths, outcome,
    # group ids, max_len -> (N,), computed over whole groups at rollout time
