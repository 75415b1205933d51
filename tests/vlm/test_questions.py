"""ShapeWorld questions: grammar round trip, answers on hand-built scenes, the split, the scene renderer."""

import random

import pytest
import torch

from flowrl.shapes.grammar import composition_key, parse_prompt, split_prompts
from flowrl.shapes.questions import (
    Question,
    answer_question,
    format_question,
    invert_choice,
    parse_question,
    sample_items,
)
from flowrl.shapes.render import render_spec
from flowrl.shapes.scene import Scene, SceneObject, draw_scene, sample_scene

# a red circle at x 2..10, a blue square at x 14..22 (both y 4), a second red circle at x 24..30, y 20
SCENE = Scene(
    (
        SceneObject("red", "circle", 2, 4, 8),
        SceneObject("blue", "square", 14, 4, 8),
        SceneObject("red", "circle", 24, 20, 6),
    ),
    32,
)


@pytest.mark.parametrize(
    "text, answer",
    [
        ("how many red circles are there ?", "two"),
        ("how many objects are there ?", "three"),
        ("how many blue objects are there ?", "one"),
        ("how many green triangles are there ?", "zero"),
        ("what colour is the square ?", "blue"),
        ("what shape is the blue object ?", "square"),
        ("is there a blue square ?", "yes"),
        ("is there a circle ?", "yes"),
        ("is there a red square ?", "no"),
        # options red, green, blue, cyan: red and blue present -> a c; inverted -> b d
        ("which colours are there ? ( a ) red ( b ) green ( c ) blue ( d ) cyan", "a c"),
        ("which colours are not there ? ( a ) red ( b ) green ( c ) blue ( d ) cyan", "b d"),
        ("which colours are not there ? ( a ) red ( b ) blue ( c ) red ( d ) blue", "none"),
    ],
)
def test_answers_on_a_hand_built_scene(text, answer):
    q = parse_question(text)
    assert format_question(q) == text
    assert answer_question(q, SCENE) == answer


def test_relation_answers_and_undecided_pairs():
    scene = Scene((SceneObject("red", "circle", 2, 4, 8), SceneObject("blue", "square", 14, 4, 8)), 32)
    yes = parse_question("is the red circle left of the blue square ?")
    no = parse_question("is the red circle right of the blue square ?")
    assert answer_question(yes, scene) == "yes" and answer_question(no, scene) == "no"
    # boxes overlap vertically (both y 4..12): "above" is undecided
    with pytest.raises(ValueError, match="overlap"):
        answer_question(parse_question("is the red circle above the blue square ?"), scene)
    with pytest.raises(ValueError, match="exactly one"):  # two red circles in SCENE
        answer_question(parse_question("what shape is the red object ?"), SCENE)


@pytest.mark.parametrize(
    "bad, word",
    [
        ("how many purple circles are there ?", "purple"),
        ("what colour is the hexagon ?", "hexagon"),
        ("why is the sky blue ?", "starts with none"),
        ("is there a red circle", "[colour] shape"),
        ("how many red circles are there ? now", "ends with"),
    ],
)
def test_questions_outside_the_grammar_are_named(bad, word):
    with pytest.raises(ValueError, match="outside the ShapeWorld question grammar") as e:
        parse_question(bad)
    assert word in str(e.value), str(e.value)


def test_inversion_complements_the_answer():
    q = Question("choice", options=("red", "green", "blue", "cyan"))
    assert answer_question(invert_choice(q), SCENE) == "b d"
    assert invert_choice(invert_choice(q)) == q


def test_scene_draw_equals_the_renderer():
    for seed in range(10):
        for prompt in ("a red circle left of a blue square", "three green triangles", "a circle and a square"):
            spec = parse_prompt(prompt)
            a = draw_scene(sample_scene(spec, rng=random.Random(seed)))
            assert torch.equal(a, render_spec(spec, rng=random.Random(seed)))


def test_split_follows_the_image_split():
    families = ("counting", "two_objects", "colors", "position")
    held_out = {composition_key(s) for f in families for s in split_prompts(f, "test")}
    test, train = sample_items(300, split="test", seed=3), sample_items(300, split="train", seed=3)
    assert {it.image_family for it in test} <= set(families)  # single-object scenes are in both image splits
    assert all(composition_key(parse_prompt(it.image_prompt)) in held_out for it in test)
    assert not any(composition_key(parse_prompt(it.image_prompt)) in held_out for it in train)
    for it in test + train:  # every answer is recomputable from the scene, every question parses back
        assert parse_question(format_question(it.question)) == it.question
        assert answer_question(it.question, it.scene) == it.answer
        assert len(it.scene.objects) == sum(o.count for o in parse_prompt(it.image_prompt).objects)


def test_sampling_is_deterministic():
    assert sample_items(20, split="train", seed=5) == sample_items(20, split="train", seed=5)
    assert sample_items(20, split="train", seed=5) != sample_items(20, split="train", seed=6)
