"""Grammar, parser, family enumeration, composition split and the seeded prompt sampler."""

import itertools
import os
import subprocess
import sys

import pytest

from flowrl.shapes.grammar import (
    FAMILIES,
    ObjectSpec,
    PromptSpec,
    enumerate_family,
    format_prompt,
    parse_prompt,
    split_prompts,
)
from flowrl.shapes.sampler import sample_prompts, sample_specs


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a red circle", PromptSpec((ObjectSpec("circle", "red", 1),), None, "single")),
        ("a triangle", PromptSpec((ObjectSpec("triangle", None, 1),), None, "single")),
        ("three blue squares", PromptSpec((ObjectSpec("square", "blue", 3),), None, "counting")),
        ("Four Cyan Triangles ", PromptSpec((ObjectSpec("triangle", "cyan", 4),), None, "counting")),
        (
            "a circle and a square",
            PromptSpec((ObjectSpec("circle", None, 1), ObjectSpec("square", None, 1)), None, "two_objects"),
        ),
        (
            "a red circle and a blue square",
            PromptSpec((ObjectSpec("circle", "red", 1), ObjectSpec("square", "blue", 1)), None, "colors"),
        ),
        (
            "a yellow square left of a green circle",
            PromptSpec((ObjectSpec("square", "yellow", 1), ObjectSpec("circle", "green", 1)), "left of", "position"),
        ),
        (
            "a magenta triangle below a red square",
            PromptSpec((ObjectSpec("triangle", "magenta", 1), ObjectSpec("square", "red", 1)), "below", "position"),
        ),
    ],
)
def test_parse_known_prompts(text, expected):
    assert parse_prompt(text) == expected


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("a purple circle", "purple"),
        ("a red hexagon", "hexagon"),
        ("five red circles", "five"),
        ("a red circle next to a blue square", "next"),
        ("a red circle and a blue square please", "please"),
    ],
)
def test_unknown_word_is_named_with_valid_options(text, word):
    with pytest.raises(ValueError) as info:
        parse_prompt(text)
    message = str(info.value)
    assert repr(word) in message
    assert "Valid words" in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("two red circle", "plural"),
        ("a red circles", "singular"),
        ("a red circle left a blue square", "'of'"),
        ("a red", "ends early"),
        ("", "Empty prompt"),
        ("two red circles left of a blue square", "single objects"),
        ("a red circle and two blue squares", "single objects"),
    ],
)
def test_malformed_structure_errors(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_prompt(text)


def test_family_sizes():
    # 6 colours x 3 shapes = 18 objects.
    # single: 18; counting: counts 2..4 x 18 = 54; two_objects: ordered pairs of different shapes 3 * 2 = 6;
    # colors: ordered pairs with different colours: 18 first objects x (5 other colours x 3 shapes) = 270;
    # position: ordered pairs of distinct objects 18 * 17 = 306, times 4 relations = 1224.
    sizes = {family: len(enumerate_family(family)) for family in FAMILIES}
    assert sizes == {"single": 18, "counting": 54, "two_objects": 6, "colors": 270, "position": 1224}


def test_format_parse_round_trip_on_every_prompt():
    for family in FAMILIES:
        for spec in enumerate_family(family):
            assert parse_prompt(format_prompt(spec)) == spec
            assert spec.family == family


def _meaning(spec: PromptSpec) -> tuple:
    """Order-free meaning of a prompt, written independently of grammar.composition_key."""
    objects = [(obj.count, obj.color, obj.shape) for obj in spec.objects]
    if spec.relation is None:
        return (spec.family, frozenset(itertools.permutations(objects)) if len(objects) == 2 else tuple(objects))
    flipped = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
    forward = (objects[0], spec.relation, objects[1])
    backward = (objects[1], flipped[spec.relation], objects[0])
    return (spec.family, frozenset([forward, backward]))


@pytest.mark.parametrize("family", ["counting", "two_objects", "colors", "position"])
def test_split_holds_out_unseen_compositions(family):
    train = split_prompts(family, "train")
    test = split_prompts(family, "test")
    assert train and test
    assert len(train) + len(test) == len(enumerate_family(family))
    train_meanings = {_meaning(spec) for spec in train}
    assert not any(_meaning(spec) in train_meanings for spec in test)
    # Held out is a minority (about 20% of compositions).
    assert len(test) < len(train)


def test_single_object_prompts_are_in_both_splits_by_design():
    assert split_prompts("single", "train") == split_prompts("single", "test")


def test_sampler_is_deterministic_and_respects_the_split():
    first = sample_prompts(300, split="test", seed=7)
    assert first == sample_prompts(300, split="test", seed=7)
    assert first != sample_prompts(300, split="test", seed=8)
    test_texts = {format_prompt(spec) for family in FAMILIES for spec in split_prompts(family, "test")}
    assert set(first) <= test_texts
    families = {spec.family for spec in sample_specs(300, split="train", seed=1)}
    assert families == set(FAMILIES)
    only_counting = sample_specs(50, split="train", seed=1, family_weights={"counting": 1.0})
    assert {spec.family for spec in only_counting} == {"counting"}


def test_sampler_and_split_are_identical_across_processes():
    code = "from flowrl.shapes.sampler import sample_prompts; print(sample_prompts(40, split='train', seed=3))"
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        outputs.append(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout)
    assert outputs[0] == outputs[1]
    assert outputs[0].startswith("['")


def test_sampler_rejects_unknown_family():
    with pytest.raises(ValueError, match="counting"):
        sample_specs(3, split="train", seed=0, family_weights={"countin": 1.0})
