"""Reasoning-answer consistency of ShapeWorld completions: does the answer follow from the completion's own reasoning?

GRPO-CARE (arXiv 2506.16141) reports, beside accuracy, how often a completion's answer is consistent with its
reasoning; the paper judges that with a language model [?: the judge and its prompt are not in our notes]. Here the
reasoning is a list of objects (``<think> red circle blue square </think>``, left to right, `flowrl.shapes.questions
.describe`), so the answer it implies is computed exactly, with the same answer rules as the grader's scenes
(`flowrl.shapes.questions.answer_question`) applied to the listed objects:

    implied(think, q) = answer_question(q, objects listed in think)
    consistency rate  = #{i : answer_i = implied(think_i, q_i)} / #{i : implied(think_i, q_i) is defined}

``implied`` is undefined (the completion is left out of the rate) when the completion is not well formed, its
reasoning is empty (TON's "no thinking" answers), its reasoning is not a list of ``colour shape`` pairs, or the
question is not decidable from a list: a colour / shape question whose object is missing or not unique in the list, and
every relation question except ``left of`` / ``right of`` between two listed objects (the list orders objects by their
centres, so it tells left from right only; ``above`` / ``below`` need positions it does not carry). A correct answer
with a wrong reasoning is inconsistent, and a wrong answer that follows a wrong reasoning is consistent: the rate
measures whether the answer is read off the reasoning, not whether either is right.
"""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

from flowrl.shapes.grammar import COLORS, SHAPES
from flowrl.shapes.questions import NUMBER_WORDS, Question, answer_question, parse_question
from flowrl.shapes.scene import Scene, SceneObject


class ConsistencyRate(NamedTuple):
    rate: float  # consistent / decidable (nan when none is decidable)
    decidable: int  # completions whose reasoning decides their question
    consistent: int


def listed_objects(think: str) -> list[tuple[str, str]] | None:
    """The ``(colour, shape)`` pairs of a reasoning text, in order; None if it is not a list of such pairs."""
    words = think.split()
    if len(words) % 2:
        return None
    pairs = list(zip(words[0::2], words[1::2], strict=True))
    if any(c not in COLORS or s not in SHAPES for c, s in pairs):
        return None
    return pairs


def object_list_f1(pred: list[tuple[str, str]], gold: list[tuple[str, str]]) -> float:
    """Multiset F1 ``2 |P & G| / (|P| + |G|)`` of two object lists; 0 when either is empty."""
    if not pred or not gold:
        return 0.0
    return 2.0 * sum((Counter(pred) & Counter(gold)).values()) / (len(pred) + len(gold))


def _row_scene(objs: list[tuple[str, str]]) -> Scene:
    """The listed objects as a scene the grader's answer rules can read: unit boxes in one row, in list order, 2 px
    apart, so left / right of is decided by the order and above / below (same row) is not."""
    return Scene(tuple(SceneObject(c, s, 2.0 * i, 0.0, 1.0) for i, (c, s) in enumerate(objs)), 2 * len(objs))


def implied_answer(think: str, q: Question) -> str | None:
    """The answer of `q` that the object list `think` implies (`answer_question` on `_row_scene`), or None when the
    list does not decide it (module docstring) or implies a count beyond the question vocabulary's number words."""
    objs = listed_objects(think)
    if not objs:
        return None
    try:
        answer = answer_question(q, _row_scene(objs))
    except ValueError:  # not decidable from the list
        return None
    return None if q.family == "count" and answer not in NUMBER_WORDS else answer


def consistency_rate(thinks: list[str | None], answers: list[str | None], questions: list[str]) -> ConsistencyRate:
    """The share of decidable completions whose answer equals the answer their reasoning implies (module docstring).

    Args:
        thinks: the reasoning text of each completion (`flowrl.vlm.rewards.extract_think`; None if malformed).
        answers: the answer text of each completion (`flowrl.vlm.rewards.extract_answer`; None if missing).
        questions: each completion's question text (grammar of `flowrl.shapes.questions`).
    """
    if not len(thinks) == len(answers) == len(questions):
        raise ValueError(
            f"consistency_rate needs one reasoning, answer and question per completion; got {len(thinks)}, "
            f"{len(answers)} and {len(questions)}."
        )
    decidable = consistent = 0
    for think, answer, question in zip(thinks, answers, questions, strict=True):
        if think is None or answer is None:
            continue
        implied = implied_answer(think, parse_question(question))
        if implied is None:
            continue
        decidable += 1
        consistent += answer == implied
    return ConsistencyRate(consistent / decidable if decidable else float("nan"), decidable, consistent)
