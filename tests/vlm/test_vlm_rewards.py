"""Question rewards: answer extraction, exact match, TW-GRPO's partial credit, the think format, the object-list
F1 and the reasoning-answer consistency."""

import pytest
import torch

from flowrl.vlm.rewards import (
    ThinkConsistency,
    ThinkFormat,
    ThinkObjects,
    VQAExact,
    VQAPartial,
    choice_credit,
    extract_answer,
    extract_think,
)


def test_extraction():
    text = "<think> red circle blue square </think> <answer>  a   c </answer>"
    assert extract_answer(text) == "a c"
    assert extract_think(text) == "red circle blue square"
    assert extract_think("<think> </think> <answer> two </answer>") == ""
    assert extract_answer("<answer> two") is None
    assert extract_think("two </think> <answer> two </answer>") is None


@pytest.mark.parametrize(
    "pred, gold, credit",
    [
        ("a c", "a c", 1.0),  # all correct options
        ("a", "a c", 0.5),  # |P| / |G| = 1 / 2
        ("c", "a b c d", 0.25),  # 1 / 4
        ("a b", "a c", 0.0),  # b is wrong: 0
        ("none", "none", 1.0),
        ("a", "none", 0.0),
        (None, "a", 0.0),
    ],
)
def test_choice_credit_hand_cases(pred, gold, credit):
    assert choice_credit(pred, gold) == credit


def test_rewards_read_answer_family_and_termination():
    comps = [
        "<think> red circle </think> <answer> two </answer>",
        "<think> red circle </think> <answer> two </answer>",
        "<think> </think> <answer> a </answer>",
        "<answer> three </answer>",
    ]
    meta = [
        {"answer": "two", "family": "count", "terminated": True},
        {"answer": "two", "family": "count", "terminated": False},  # did not end: 0
        {"answer": "a c", "family": "choice", "terminated": True},
        {"answer": "three", "family": "count", "terminated": True},
    ]
    assert torch.equal(VQAExact()(comps, [""] * 4, meta), torch.tensor([1.0, 0.0, 0.0, 1.0]))
    assert torch.equal(VQAPartial()(comps, [""] * 4, meta), torch.tensor([1.0, 0.0, 0.5, 1.0]))
    assert torch.equal(ThinkFormat()(comps, [""] * 4, meta), torch.tensor([1.0, 1.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match="metadata"):
        VQAExact()(comps, [""] * 4, None)


def test_think_objects_is_the_multiset_f1_of_the_listed_objects():
    gold = {"think": "red circle green square", "answer": "two"}
    done = [
        "<think> red circle green square </think> <answer> x </answer>",  # P = G: 1
        "<think> red circle blue square </think> <answer> x </answer>",  # 1 of 2 right: 2 * 1 / (2 + 2)
        "<think> red circle red circle green square </think> <answer> x </answer>",  # 2 * 2 / (3 + 2)
        "<think> red circle </think> <answer> x </answer>",  # 2 * 1 / (1 + 2)
        "<think> </think> <answer> x </answer>",  # no reasoning: 0
        "<think> red blob </think> <answer> x </answer>",  # not a list of pairs: 0
    ]
    r = ThinkObjects()(done, [""] * len(done), [gold] * len(done))
    assert r.tolist() == pytest.approx([1.0, 0.5, 0.8, 2 / 3, 0.0, 0.0])
    unfinished = ThinkObjects()(done[:1], [""], [{**gold, "terminated": False}])
    assert unfinished.tolist() == [0.0]
    with pytest.raises(ValueError, match="reference reasoning 'think'"):
        ThinkObjects()(done[:1], [""], [{"answer": "two"}])


def test_think_consistency_rewards_answers_read_off_the_reasoning():
    done = [
        "<think> red circle red circle </think> <answer> two </answer>",  # implied two: 1
        "<think> red circle red circle </think> <answer> one </answer>",  # implied two: 0
        "<think> </think> <answer> one </answer>",  # nothing listed: 0
    ]
    prompts = ["<k0><k1> how many circles are there ?"] * 3
    assert ThinkConsistency()(done, prompts, None).tolist() == [1.0, 0.0, 0.0]
    above = ["<think> red circle blue square </think> <answer> yes </answer>"]
    assert ThinkConsistency()(above, ["<k0> is the red circle above the blue square ?"]).tolist() == [0.0]
