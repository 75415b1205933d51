"""Held-out evaluation: the stratified prompt draw and the per-family bookkeeping."""

import os

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from flowrl.shapes.evaluate import evaluate_model, stratified_prompts  # noqa: E402
from flowrl.shapes.grammar import parse_prompt  # noqa: E402
from flowrl.shapes.model import build_shapeworld  # noqa: E402

# Test-split sizes per family (see tests/shapes/test_grammar.py: about 20% of each family's compositions).
FAMILY_ORDER = ["single", "counting", "two_objects", "colors", "position"]


def test_stratified_prompts_are_blocked_by_family_and_as_distinct_as_possible():
    prompts = stratified_prompts(30, split="test", seed=0)
    assert len(prompts) == 150
    for block, family in enumerate(FAMILY_ORDER):
        chunk = prompts[30 * block : 30 * (block + 1)]
        assert {parse_prompt(prompt).family for prompt in chunk} == {family}
        # single has 18 test prompts, two_objects 2: all of them appear; the larger families repeat nothing.
        expected_distinct = {"single": 18, "counting": 11, "two_objects": 2}.get(family, 30)
        assert len(set(chunk)) == expected_distinct
    assert prompts == stratified_prompts(30, split="test", seed=0)
    assert prompts != stratified_prompts(30, split="test", seed=1)


def test_evaluate_model_counts_every_image():
    torch.manual_seed(0)
    model = build_shapeworld(num_layers=1, num_attention_heads=2, attention_head_dim=16, text_hidden_size=32)
    prompts = stratified_prompts(2, split="test", seed=0)
    result = evaluate_model(model, prompts, seeds=[0, 1], num_inference_steps=1, batch_size=4)
    assert result.count["overall"] == 20 and all(result.count[family] == 4 for family in FAMILY_ORDER)
    assert all(0.0 <= value <= 1.0 for value in (*result.strict.values(), *result.score.values()))
