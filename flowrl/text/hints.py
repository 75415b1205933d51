"""Hinted second rollouts of the text trainer (`hooks.hints`: Scaf-GRPO and Guide-GRPO) and the hint texts of the
arithmetic and chain tasks. The replacement of a failed completion and the guided ratio are `flowrl.grpo.hints`."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from flowrl.grpo.schedules import HintPlanner
from flowrl.text.hook_types import resolve


def answer_prefix(row: dict, tier: str) -> str:
    """Stand-in hints of the arithmetic task, by Scaf-GRPO tier: the answer's first character (knowledge), first two
    (planning), or the whole answer (solution). A char-level arithmetic LM cannot read natural-language hints, and an
    in-context worked example drops its accuracy to 0, so a forced answer prefix is the hint it can use."""
    answer = str(row["answer"])
    return {"knowledge": answer[:1], "planning": answer[:2], "solution": answer}[tier]


def rubric_steps(row: dict, tier: str) -> str:
    """RGR-GRPO's rubric guidance on the chain task (flowrl/text/chain.py; our stand-in for its rubric-guided
    self-refinement, which a char-level LM cannot read as text): the scratchpad up to and including the first
    (knowledge), second (planning) or every (solution) checkable partial result of the rubric's 'steps'."""
    answer = str(row["answer"])
    cuts = [i + 1 for i, c in enumerate(answer) if c == "="]  # ends of "s_k op a=" segments
    k = {"knowledge": 1, "planning": 2, "solution": len(cuts) + 1}[tier]
    return answer if k > len(cuts) else answer[: cuts[k - 1]]


HINT_TEXTS: dict[str, Callable[[dict, str], str]] = {"answer_prefix": answer_prefix, "rubric_steps": rubric_steps}


class Hints(NamedTuple):
    """A hinted second rollout for the groups whose every completion failed (reward.names[0] <= 0).

    ``scaf_grpo`` (arXiv 2510.19807): the hint is appended to the prompt and the guided completion is trained
    on-policy *with* the hint in its context. ``guide`` (arXiv 2506.13923): the guided completion is trained *as if
    the hint were absent*: the hint tokens become the start of the response to the plain prompt, and the ratio's
    denominator is the hinted sampler's probability (1 on the forced hint tokens, `grpo.hints.guided_old_logp`).
    Either way the first successful guided completion replaces the group's first failed one
    (`grpo.hints.replace_failed`), and the group's advantages are computed over the mixed group."""

    mode: str  # "scaf_grpo" | "guide"
    planner: HintPlanner  # tiers and the exemption phase
    text: Callable[[dict, str], str]  # (task row, tier) -> hint text
    guided_samples: int  # completions sampled per hinted prompt and tier


def _hints(mode: str):
    def make(*, exemption_steps: int = 0, guided_samples: int = 4, hint: str = "answer_prefix", tiers=None) -> Hints:
        if guided_samples < 1:
            raise ValueError(f"hints need guided_samples >= 1, got {guided_samples}.")
        planner_kwargs = {} if tiers is None else {"tiers": tuple(tiers)}
        planner = HintPlanner(exemption_steps=exemption_steps, **planner_kwargs)
        return Hints(mode, planner, resolve(hint, HINT_TEXTS, what="hint text function"), guided_samples)

    return make


HINTS: dict[str, Callable[..., Hints]] = {"scaf_grpo": _hints("scaf_grpo"), "guide": _hints("guide")}
