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

from typing import NamedTuple

from flowrl.shapes.grammar import COLORS, SHAPES
from flowrl.shapes.questions import NUMBER_WORDS, Question, parse_question


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


def _matches(obj: tuple[str, str], color: str | None, shape: str | None) -> bool:
    return (color is None or obj[0] == color) and (shape is None or obj[1] == shape)


def implied_answer(think: str, q: Question) -> str | None:
    """The answer of `q` that the object list `think` implies, or None when the list does not decide it."""
    objs = listed_objects(think)
    if objs is None or not objs:
        return None
    if q.family == "count":
        n = sum(_matches(o, q.color, q.shape) for o in objs)
        return NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else None
    if q.family == "exist":
        return "yes" if any(_matches(o, q.color, q.shape) for o in objs) else "no"
    if q.family in ("colour", "shape"):
        hits = [o for o in objs if _matches(o, q.color, q.shape)]
        if len(hits) != 1:
            return None
        return hits[0][0] if q.family == "colour" else hits[0][1]
    if q.family == "choice":
        present = {c for c, _ in objs}
        letters = [L for L, c in zip("abcd", q.options, strict=True) if (c in present) != q.negated]
        return " ".join(letters) if letters else "none"
    if q.family == "relation" and q.relation in ("left of", "right of"):
        a = [i for i, o in enumerate(objs) if o == (q.color, q.shape)]
        b = [i for i, o in enumerate(objs) if o == q.other]
        if len(a) != 1 or len(b) != 1:
            return None
        a_first = a[0] < b[0]
        return "yes" if a_first == (q.relation == "left of") else "no"
    return None


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
