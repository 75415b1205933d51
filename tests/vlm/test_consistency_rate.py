"""GRPO-CARE's consistency rate on hand-written completions: the answer each object list implies, and the rate."""

import math

import pytest

from flowrl.shapes.questions import parse_question
from flowrl.vlm.consistency_rate import consistency_rate, implied_answer, listed_objects


def implied(think: str, question: str) -> str | None:
    return implied_answer(think, parse_question(question))


THINK = "red circle blue square red square"  # the list runs left to right: it decides left of / right of only


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("how many red objects are there ?", "two"),
        ("how many squares are there ?", "two"),
        ("how many green objects are there ?", "zero"),
        ("is there a blue square ?", "yes"),
        ("is there a triangle ?", "no"),
        ("what colour is the circle ?", "red"),
        ("what shape is the blue object ?", "square"),
        ("what colour is the square ?", None),  # two squares: not unique
        ("what colour is the triangle ?", None),  # none listed
        ("which colours are there ? ( a ) red ( b ) green ( c ) blue ( d ) cyan", "a c"),
        ("which colours are not there ? ( a ) red ( b ) green ( c ) blue ( d ) cyan", "b d"),
        ("which colours are there ? ( a ) green ( b ) cyan ( c ) yellow ( d ) magenta", "none"),
        ("is the red circle left of the blue square ?", "yes"),
        ("is the red circle right of the blue square ?", "no"),
        ("is the red square left of the blue square ?", "no"),
        ("is the red circle above the blue square ?", None),
        ("is the red circle right of the red circle ?", None),  # one object: no relation to itself (the grader's rule)
    ],
)
def test_implied_answer_by_family(question, answer):
    assert implied(THINK, question) == answer


def test_lists_that_decide_nothing():
    assert listed_objects("") == []
    assert implied("", "is there a red circle ?") is None  # empty reasoning (TON's no-thinking answer)
    assert listed_objects("red circle blue") is None
    assert implied("red blob", "is there a red circle ?") is None
    assert implied("red circle " * 5, "how many circles are there ?") is None  # five: no number word


def test_rate_over_completions_by_hand():
    q = ["how many circles are there ?", "is there a red circle ?", "what colour is the square ?",
         "is the red circle above the blue square ?", "is there a blue square ?"]  # fmt: skip
    thinks = ["red circle red circle", "blue square", "green square", "red circle blue square", None]
    answers = ["two", "yes", "red", "yes", "yes"]
    # row 0 consistent, row 1 inconsistent (list has no red circle), row 2 inconsistent (green), rows 3-4 undecidable
    r = consistency_rate(thinks, answers, q)
    assert (r.decidable, r.consistent) == (3, 1) and r.rate == pytest.approx(1 / 3)
    assert math.isnan(consistency_rate([None], ["yes"], q[:1]).rate)
    with pytest.raises(ValueError, match="one reasoning, answer and question"):
        consistency_rate(thinks, answers[:2], q)
