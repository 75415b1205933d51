"""GRPO-CARE's consistency shaper (arXiv 2506.16141), the `care` entry of `hooks.SHAPERS`: an EMA reference of the
policy scores each completion's answer span, and the correct completions it finds likely get a bonus. The math is
`flowrl.grpo.consistency`; this module holds the EMA copy and the answer span."""

from __future__ import annotations

import torch

from flowrl.text.hook_types import Shaped, ShapeFn, ShapingInput, binary_outcome


def answer_span_mask(tokens: list[list[str]], width: int, *, open_tag: str = "<answer>") -> torch.Tensor:
    """`(N, width)` float mask of each completion's answer tokens: the tokens after its first `open_tag` token, up
    to its end (the closing tag and EOS included); all zero for a completion without the tag."""
    mask = torch.zeros(len(tokens), width)
    for i, toks in enumerate(tokens):
        if open_tag in toks[:width]:
            mask[i, toks.index(open_tag) + 1 : min(len(toks), width)] = 1.0
    return mask


def care(*, lam: float = 0.5, momentum: float = 0.995, open_tag: str = "<answer>") -> ShapeFn:
    """GRPO-CARE's consistency bonus (arXiv 2506.16141; `flowrl.grpo.consistency`): a slowly-evolving reference, the
    EMA ``theta_ref <- m theta_ref + (1 - m) theta`` of the policy (a copy made at the first step, updated with the
    weights of the previous step's update before each step's scoring), scores each completion's answer given the
    prompt, the image and its own reasoning, ``c_i = exp(mean over the answer tokens of log pi_ref)``; the correct
    completions (reward.names[0] = 1) whose ``c_i`` is at least the mean of the group's correct ones get
    ``b_i = lam``, and the trained reward is ``r_i + b_i``. The answer tokens follow the first `open_tag` token
    (`answer_span_mask`); a completion without one has c_i = 0. lam 0.5, m 0.995 [?]."""
    from flowrl.grpo.consistency import consistency_bonus, ema_update

    state: dict[str, torch.nn.Module] = {}

    def shape(x: ShapingInput) -> Shaped:
        if x.model is None or x.logprobs_under is None:
            raise ValueError("hooks.shaping=care needs the policy model and a scorer in ShapingInput (the trainer).")
        correct = binary_outcome(x, "care")
        if "ema" not in state:
            state["ema"] = _frozen_copy(x.model)
        else:
            ema_update(state["ema"], x.model, momentum=momentum)
        logp = x.logprobs_under(state["ema"]).logp  # (N, C)
        span = answer_span_mask(x.tokens, logp.shape[1], open_tag=open_tag) * x.mask  # (N, C)
        n = span.sum(-1)
        likelihood = torch.where(n > 0, torch.exp((logp * span).sum(-1) / n.clamp(min=1)), 0.0)  # (N,)
        return Shaped(x.total + consistency_bonus(correct, likelihood, x.group_ids, lam=lam))

    return shape


def _frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A frozen copy in eval mode; a VLM's copy shares the policy's image store (images bound later reach it)."""
    import copy

    from flowrl.vlm.model import KeyedImageVLM

    out = copy.deepcopy(model).eval().requires_grad_(False)
    if isinstance(model, KeyedImageVLM):
        out.images = model.images
    return out
