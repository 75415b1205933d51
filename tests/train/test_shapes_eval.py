"""ShapeWorld evaluation by split: keys, pairing and the paired standard error (hand values)."""

import math

import pytest
import torch

from flowrl.shapes.render import render_prompts
from flowrl.train.shapes_eval import (
    TRAIN_PREFIX,
    change_lines,
    change_metrics,
    grade_by_split,
    paired_change,
    shapeworld_eval_set,
)


def test_paired_change_hand_values():
    # d = (1, 0, 0, 1) - (0, 0, 1, 0) = (1, 0, -1, 1): mean 1/4, sample var = (0.5625 + 0.0625 + 1.5625 + 0.5625) / 3
    mean, se = paired_change([0, 0, 1, 0], [1, 0, 0, 1])
    assert mean == pytest.approx(0.25)
    assert se == pytest.approx(math.sqrt((0.5625 + 0.0625 + 1.5625 + 0.5625) / 3 / 4))
    with pytest.raises(ValueError, match="same eval"):
        paired_change([0, 1], [1])


def test_change_metrics_logs_each_shared_key_with_its_paired_se():
    base = {"overall": [0, 0, 1, 0], "train/overall": [1, 1], "only_base": [1]}
    final = {"overall": [1, 0, 0, 1], "train/overall": [1, 0], "other": [0], "only_base": [1, 0]}
    out = change_metrics(base, final)
    assert set(out) == {
        "eval/change/overall",
        "eval/change_se/overall",
        "eval/change/train/overall",
        "eval/change_se/train/overall",
    }  # "only_base" differs in length: other settings, skipped
    assert out["eval/change/overall"] == pytest.approx(0.25)
    assert out["eval/change_se/overall"] == pytest.approx(paired_change([0, 0, 1, 0], [1, 0, 0, 1])[1])
    # d = (0, -1): mean -1/2, sample var 1/2, s.e. sqrt(1/2 / 2) = 1/2
    assert out["eval/change/train/overall"] == pytest.approx(-0.5)
    assert out["eval/change_se/train/overall"] == pytest.approx(0.5)


def test_eval_set_keeps_the_splits_apart():
    from flowrl.shapes.grammar import composition_key, held_out_keys, parse_prompt

    prompts, prefixes = shapeworld_eval_set(heldout_per_family=3, train_per_family=2)
    assert prefixes == [""] * 15 + [TRAIN_PREFIX] * 10
    for prompt, prefix in zip(prompts, prefixes, strict=True):
        spec = parse_prompt(prompt)
        if spec.family == "single":  # single-object prompts are concepts, in both splits (grammar.held_out_keys)
            continue
        in_test = composition_key(spec) in held_out_keys(spec.family)
        assert in_test == (prefix == "")


def test_grade_by_split_lists_every_sample_under_its_split():
    prompts = ["a red circle", "two blue squares", "a green triangle"]
    images = render_prompts(prompts, seed=0)  # renders pass the grader
    strict, score = grade_by_split(images, prompts, ["", TRAIN_PREFIX, TRAIN_PREFIX])
    assert strict["overall"] == [1.0] and strict["single"] == [1.0]
    assert strict["train/overall"] == [1.0, 1.0] and strict["train/counting"] == [1.0]
    blank = torch.zeros_like(images)
    strict_blank, _ = grade_by_split(blank, prompts, ["", TRAIN_PREFIX, TRAIN_PREFIX])
    lines = change_lines(strict_blank, strict)
    assert lines[0].startswith("held-out compositions 0.0% -> 100.0% (+100.0 +- 0.0 points")
    assert lines[1].startswith("train-split compositions 0.0% -> 100.0% (+100.0 +- 0.0 points")
    assert set(score) == set(strict)
