"""GenEval's rules (`rewards.geneval`) on hand-built detections, the prompts-file format, the ShapeWorld detector and
the `geneval` rewards. Every expected number is worked out in a comment from GenEval's ``evaluate_images.py`` and
the reward server's ``evaluate_reward``. Run: python -m pytest tests/rewards/test_geneval.py -q
"""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rewards import load_reward
from rewards.geneval import (
    TAGS,
    Detection,
    evaluate_detections,
    geneval_score,
    relative_position,
    select_detections,
)
from rewards.geneval_prompts import check_metadata, read_geneval_prompts

IMAGE = torch.zeros(3, 64, 64)


def _det(label, x0, y0, x1, y1, score=0.95):
    return Detection(label, (float(x0), float(y0), float(x1), float(y1)), score)


class _ColourByX:
    """A colour classifier that reads an object's colour from a table keyed by its box's x0."""

    colors = ("red", "blue")

    def __init__(self, table):
        self.table = table

    def __call__(self, image, detections, label):
        return [self.table[int(d.box[0])] for d in detections]


class _Fixed:
    """A detector returning fixed detections for every image."""

    labels = ("cat", "dog")

    def __init__(self, detections):
        self.detections = detections

    def __call__(self, images):
        return [list(self.detections) for _ in images]


def _evaluate(detections, metadata, **kw):
    objects = select_detections(detections, tag=metadata.get("tag", "two_object"))
    return evaluate_detections(IMAGE, objects, metadata, **kw)


# ------------------------------------------------------------------------------------------------ position


@pytest.mark.parametrize(
    ("box_b", "expected"),
    [
        # A (0,0,10,10), B (30,0,40,10): offset (-30, 0), t (d_A + d_B) = 0.1 * 20 = 2 -> r = (-28, 0), /30 -> -0.93
        ((30, 0, 40, 10), {"left of"}),
        # B (20,20,30,30): offset (-20,-20), r = (-18,-18), /28.28 -> -0.64 on both axes: two relations
        ((20, 20, 30, 30), {"left of", "above"}),
        # B (12,0,22,10): offset -12, r = -10, /12 -> -0.83 (close boxes still relate)
        ((12, 0, 22, 10), {"left of"}),
        # B (1,0,11,10): offset -1 < 2: r = 0 on both axes -> no relation
        ((1, 0, 11, 10), set()),
        # B (2,30,12,40): offset (-2,-30), r = (0,-28), /30.07 -> dy -0.93: above only
        ((2, 30, 12, 40), {"above"}),
        # B (0,-30,10,-20): A is below B
        ((0, -30, 10, -20), {"below"}),
    ],
)
def test_relative_position_matches_geneval_hand_computed(box_b, expected):
    assert relative_position((0, 0, 10, 10), box_b) == expected


def test_relative_position_dominant_direction():
    # B (20,40,30,50): offset (-20,-40), r = (-18,-38), |o| = 44.72 -> dx -0.40 (not left), dy -0.85 (above)
    assert relative_position((0, 0, 10, 10), (20, 40, 30, 50)) == {"above"}


# ------------------------------------------------------------------------------------------------ selection


def test_select_detections_thresholds_order_cap_and_nms():
    dets = [_det("cat", 0, 0, 10, 10, 0.5), _det("cat", 20, 0, 30, 10, 0.95), _det("cat", 40, 0, 50, 10, 0.2)]
    kept = select_detections(dets, tag="two_object")  # > 0.3: two, best first
    assert [d.score for d in kept["cat"]] == [0.95, 0.5]
    assert [d.score for d in select_detections(dets, tag="counting")["cat"]] == [0.95]  # > 0.9 for counting
    assert [d.score for d in select_detections(dets, tag="colors", max_objects=1)["cat"]] == [0.95]
    overlapping = [_det("cat", 0, 0, 10, 10, 0.9), _det("cat", 1, 0, 11, 10, 0.8)]  # IoU 110 / 132 = 0.83
    assert len(select_detections(overlapping, tag="colors")["cat"]) == 2  # NMS off (1.0), GenEval's default
    assert len(select_detections(overlapping, tag="colors", nms_threshold=0.8)["cat"]) == 1
    assert "dog" not in select_detections(dets, tag="colors")


# ------------------------------------------------------------------------------------------------ count


@pytest.mark.parametrize(
    ("n", "correct", "strict", "score"),
    [
        (1, False, False, 0.5),  # 1 < 2; credit 1 - |2 - 1| / 2
        (2, True, True, 1.0),
        (3, True, False, 0.5),  # GenEval: >= 2 passes; server: exact count, 1 - |2 - 3| / 2
        (5, True, False, -0.5),  # 1 - 3 / 2: the server's credit goes negative
    ],
)
def test_count_rule(n, correct, strict, score):
    meta = {"tag": "two_object", "include": [{"class": "cat", "count": 2}]}
    result = _evaluate([_det("cat", 20 * i, 0, 20 * i + 10, 10) for i in range(n)], meta)
    assert (result.correct, result.strict, result.score) == (correct, strict, score)


def test_exclude_makes_counting_exact_for_geneval_only():
    meta = {"tag": "counting", "include": [{"class": "cat", "count": 2}], "exclude": [{"class": "cat", "count": 3}]}
    three = [_det("cat", 20 * i, 0, 20 * i + 10, 10) for i in range(3)]
    result = _evaluate(three, meta)
    assert not result.correct and "exclude 0" in result.reasons[-1]
    assert result.score == 0.5  # the server does not read exclude: its credit is the count's, 1 - 1/2
    dog = {
        "tag": "single_object",
        "include": [{"class": "cat", "count": 1}],
        "exclude": [{"class": "dog", "count": 1}],
    }
    assert not _evaluate([_det("cat", 0, 0, 10, 10), _det("dog", 30, 0, 40, 10)], dog).correct
    assert _evaluate([_det("cat", 0, 0, 10, 10)], dog).correct


def test_counting_threshold_applies_to_counting_tag():
    # two cats at 0.95 and one at 0.5: counting reads only > 0.9, so exactly two
    meta = {"tag": "counting", "include": [{"class": "cat", "count": 2}], "exclude": [{"class": "cat", "count": 3}]}
    dets = [_det("cat", 0, 0, 10, 10), _det("cat", 20, 0, 30, 10), _det("cat", 40, 0, 50, 10, 0.5)]
    assert _evaluate(dets, meta).correct and _evaluate(dets, meta).strict


# ------------------------------------------------------------------------------------------------ colour


def test_colour_rule():
    meta = {"tag": "colors", "include": [{"class": "cat", "count": 2, "color": "red"}]}
    clf = _ColourByX({0: "red", 20: "blue", 40: "red"})
    two = [_det("cat", 0, 0, 10, 10, 0.9), _det("cat", 20, 0, 30, 10, 0.8)]
    result = _evaluate(two, meta, colour_classifier=clf)
    # one red of two: GenEval fails; server credits [count 1, colour 1 - |2 - 1| / 2] -> 0.75
    assert (result.correct, result.strict, result.score) == (False, False, 0.75)
    three = [_det("cat", 0, 0, 10, 10, 0.9), _det("cat", 40, 0, 50, 10, 0.85), _det("cat", 20, 0, 30, 10, 0.5)]
    result = _evaluate(three, meta, colour_classifier=clf)
    # GenEval colours the best 2 (x0 = 0, 40: red, red): pass; server: 3 != 2 -> [0.5, 0 for the colour] -> 0.25
    assert (result.correct, result.strict, result.score) == (True, False, 0.25)
    red_pair = [_det("cat", 0, 0, 10, 10), _det("cat", 40, 0, 50, 10)]
    assert _evaluate(red_pair, meta, colour_classifier=clf) == (True, True, 1.0, ())


def test_colour_clause_without_classifier_says_how_to_fix():
    meta = {"tag": "colors", "include": [{"class": "cat", "count": 1, "color": "red"}]}
    with pytest.raises(ValueError, match="colour_classifier="):
        _evaluate([_det("cat", 0, 0, 10, 10)], meta)


# ------------------------------------------------------------------------------------------------ position rule


POSITION = {
    "tag": "position",
    "include": [{"class": "dog", "count": 1}, {"class": "cat", "count": 1, "position": ["left of", 0]}],
}


def test_position_rule_pass_fail_and_the_server_quirk():
    dog = _det("dog", 30, 0, 40, 10)
    assert _evaluate([_det("cat", 0, 0, 10, 10), dog], POSITION) == (True, True, 1.0, ())
    right = [_det("cat", 50, 0, 60, 10), dog]
    result = _evaluate(right, POSITION)
    # credits: dog count 1; cat count 1, relation 0, then the server's unconditional 1 -> 3 / 4
    assert (result.correct, result.strict, result.score) == (False, False, 0.75)
    assert _evaluate(right, POSITION, position_quirk=False).score == pytest.approx(2 / 3)  # [1, 1, 0]
    # no dog: dog count 0; cat count 1; no target -> 0: [0, 1, 0]
    result = _evaluate([_det("cat", 0, 0, 10, 10)], POSITION)
    assert (result.correct, result.strict) == (False, False) and result.score == pytest.approx(1 / 3)
    assert "no target" in result.reasons[-1]


def test_position_with_wrong_count_gets_one_zero():
    # two cats for one: GenEval reads the best cat (left of the dog): pass; server: [1, 1 - 1, 0] -> 1/3
    dets = [_det("cat", 0, 0, 10, 10, 0.9), _det("cat", 60, 0, 70, 10, 0.8), _det("dog", 30, 0, 40, 10)]
    result = _evaluate(dets, POSITION)
    assert result.correct and not result.strict and result.score == pytest.approx(1 / 3)


def test_geneval_score_runs_the_detector():
    result = geneval_score(IMAGE, POSITION, detector=_Fixed([_det("cat", 0, 0, 10, 10), _det("dog", 30, 0, 40, 10)]))
    assert result == (True, True, 1.0, ())


# ------------------------------------------------------------------------------------------------ prompts files


def test_official_format_lines_load(tmp_path):
    lines = [
        {"tag": "counting", "include": [{"class": "bus", "count": 3}], "exclude": [{"class": "bus", "count": 4}], "prompt": "a photo of three buses"},  # noqa: E501
        POSITION | {"prompt": "a photo of a cat left of a dog"},
    ]  # fmt: skip
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    rows = read_geneval_prompts(path)
    assert [(r.line, r.prompt) for r in rows] == [(1, "a photo of three buses"), (2, "a photo of a cat left of a dog")]


def test_malformed_file_names_every_bad_line_key_and_fix(tmp_path):
    good = {"prompt": "a cat", "tag": "single_object", "include": [{"class": "cat", "count": 1}]}
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps(good | {"tag": "count"}),
        json.dumps(good | {"include": [{"class": "cat", "count": 0}]}),
        json.dumps(good | {"include": [{"class": "cat", "count": 1, "colour": "red"}]}),
        json.dumps(good | {"include": [{"class": "cat", "count": 1, "position": ["left of", 0]}]}),
        json.dumps(good | {"include": [{"class": "cat", "count": 1}, {"class": "dog", "count": 1, "position": ["near", 0]}]}),  # noqa: E501
        json.dumps(good | {"include": []}),
        json.dumps({"tag": "single_object", "include": [{"class": "cat", "count": 1}]}),
    ]  # fmt: skip
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines))
    with pytest.raises(ValueError) as info:
        read_geneval_prompts(path)
    message = str(info.value)
    assert "8 problem(s)" in message and "line 1:" not in message
    assert "line 2: invalid JSON" in message
    assert "line 3: 'tag' must be one of" in message
    assert "line 4: include[0].count must be an integer >= 1, got 0" in message
    assert "line 5: include[0] has unknown key 'colour' (GenEval spells it 'color')" in message
    assert "line 6: include[0].position[1] must index an earlier include clause" in message
    assert "line 7: include[1].position must be [relation, j]" in message
    assert "line 8: 'include' must be a non-empty list" in message
    assert "line 9: 'prompt' must be a non-empty string" in message


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="docs/geneval.md"):
        read_geneval_prompts(tmp_path / "none.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="holds no prompts"):
        read_geneval_prompts(tmp_path / "empty.jsonl")
    with pytest.raises(ValueError, match="metadata: 'tag' must be"):
        check_metadata({"prompt": "x", "include": [{"class": "cat", "count": 1}]})


# ------------------------------------------------------------------------------------------------ ShapeWorld


def _scene(objects, size=64):
    """float (3, size, size): black canvas with filled squares / discs; objects = (shape, colour, x, y, side)."""
    from flowrl.shapes.palette import PALETTE
    from flowrl.shapes.render import shape_mask

    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    for shape, colour, x, y, side in objects:
        canvas[y : y + side, x : x + side][shape_mask(shape, side)] = PALETTE[colour]
    return torch.from_numpy(canvas).permute(2, 0, 1).float() / 255


def test_shapeworld_detector_boxes_labels_and_colours():
    from flowrl.shapes.geneval import PaletteColourClassifier, ShapeWorldDetector

    image = _scene([("square", "red", 4, 6, 12), ("circle", "blue", 40, 30, 16)])
    detections = ShapeWorldDetector()(image[None])[0]
    assert sorted((d.label, d.box) for d in detections) == [
        ("blue circle", (40.0, 30.0, 56.0, 46.0)), ("circle", (40.0, 30.0, 56.0, 46.0)),
        ("red square", (4.0, 6.0, 16.0, 18.0)), ("square", (4.0, 6.0, 16.0, 18.0)),
    ]  # fmt: skip
    shapes = [d for d in detections if " " not in d.label]
    assert PaletteColourClassifier()(image, shapes, "any") == [
        "red" if d.label == "square" else "blue" for d in shapes
    ]


def test_shapes_metadata_maps_families_to_geneval_tags():
    from flowrl.shapes.geneval import shapes_metadata

    assert shapes_metadata("a circle")["tag"] == "single_object"
    assert shapes_metadata("a red circle")["include"] == [{"class": "circle", "count": 1, "color": "red"}]
    counting = shapes_metadata("three blue squares")
    assert counting["tag"] == "counting" and counting["exclude"] == [{"class": "square", "count": 4}]
    assert shapes_metadata("a circle and a triangle")["tag"] == "two_object"
    assert shapes_metadata("a red circle and a blue square")["tag"] == "color_attr"
    same = shapes_metadata("a red circle above a blue circle")
    assert same["include"] == [
        {"class": "blue circle", "count": 1},
        {"class": "red circle", "count": 1, "position": ["above", 0]},
    ]
    for prompt in ("a circle", "three blue squares", "a red circle left of a blue square"):
        check_metadata(shapes_metadata(prompt))
    import flowrl.shapes.geneval as module

    assert doctest.testmod(module).failed == 0


@pytest.mark.parametrize(
    ("name", "on_swapped"),
    [
        # red circle for "a red circle and a blue circle": credits [1, 0]; no square: [0, 0 for the colour]
        ("geneval", [0.5, 0.0, 0.0, 0.0]),
        ("geneval_strict", [0.0, 0.0, 0.0, 0.0]),
        # GenEval tolerates the extra blue circle of the last image (its best circle, the red one, is read)
        ("geneval_correct", [0.0, 0.0, 0.0, 1.0]),
    ],
)
def test_registry_rewards_on_rendered_shapeworld(name, on_swapped):
    from flowrl.shapes.render import render_prompts

    prompts = ["a red circle", "three blue squares", "a circle and a triangle", "a red circle and a blue circle"]
    images = render_prompts(prompts, seed=0, size=64)
    assert load_reward(name)(images, prompts, None).tolist() == [1.0] * 4
    swapped = list(reversed(prompts))  # image i scored against the prompt of image 3 - i
    assert load_reward(name)(images, swapped, None).tolist() == on_swapped


def test_position_on_shapeworld_scenes():
    reward = load_reward("geneval_correct")
    left = _scene([("circle", "red", 4, 20, 12), ("square", "blue", 40, 22, 12)])
    right = _scene([("circle", "red", 44, 20, 12), ("square", "blue", 4, 22, 12)])
    prompts = ["a red circle left of a blue square"] * 2
    assert reward(torch.stack([left, right]), prompts).tolist() == [1.0, 0.0]
    score = load_reward("geneval")(right[None], prompts[:1]).item()
    # square: count 1, colour 1; circle: count 1, colour 1, relation 0, the server's 1 -> 5 / 6
    assert score == pytest.approx(5 / 6)


def test_metadata_passed_by_the_caller_or_a_file_wins_over_the_prompt(tmp_path):
    image = _scene([("circle", "red", 4, 20, 12)])[None]
    two = {"tag": "counting", "include": [{"class": "circle", "count": 2}]}
    reward = load_reward("geneval")
    assert reward(image, ["a red circle"], None).item() == 1.0
    assert reward(image, ["a red circle"], [two]).item() == 0.5  # 1 - |2 - 1| / 2
    path = tmp_path / "meta.jsonl"
    path.write_text(json.dumps({"prompt": "a red circle", **two}) + "\n")
    assert load_reward("geneval", metadata_file=str(path))(image, ["a red circle"]).item() == 0.5


def test_user_detector_by_dotted_path_and_vocabulary_errors():
    image = _scene([("circle", "red", 4, 20, 12)])[None]
    reward = load_reward(
        "geneval_correct",
        detector="flowrl.shapes.geneval:ShapeWorldDetector",
        colour_classifier="flowrl.shapes.geneval:PaletteColourClassifier",
    )
    meta = [{"tag": "colors", "include": [{"class": "circle", "count": 1, "color": "red"}]}]
    assert reward(image, ["x"], meta).item() == 1.0
    with pytest.raises(ValueError, match="no GenEval metadata for prompt 'x'"):
        reward(image, ["x"], None)
    with pytest.raises(ValueError, match="class 'cat' .* not a label of the detector"):
        reward(image, ["x"], [{"tag": "single_object", "include": [{"class": "cat", "count": 1}]}])
    with pytest.raises(ValueError, match="colour 'purple'"):
        reward(image, ["x"], [{"tag": "colors", "include": [{"class": "circle", "count": 1, "color": "purple"}]}])
    with pytest.raises(ValueError, match="metadata of sample 0: include\\[0\\].count"):
        reward(image, ["x"], [{"tag": "colors", "include": [{"class": "circle", "count": "1"}]}])


# ------------------------------------------------------------------------------------------------ shipped files

PROMPTS = Path(__file__).resolve().parents[2] / "prompts"


def test_shipped_prompt_files_load_and_the_shapeworld_one_is_the_grammar_mapping():
    from flowrl.shapes.geneval import shapes_metadata

    example = read_geneval_prompts(PROMPTS / "geneval_example.jsonl")
    assert sorted(row.metadata["tag"] for row in example) == sorted(TAGS)
    shapes = read_geneval_prompts(PROMPTS / "geneval_shapes_test.jsonl")
    assert {row.metadata["tag"] for row in shapes} == {"colors", "counting", "two_object", "color_attr", "position"}
    assert all(row.metadata == shapes_metadata(row.prompt) for row in shapes)
    reward = load_reward("geneval", metadata_file=str(PROMPTS / "geneval_shapes_test.jsonl"))
    assert reward._by_prompt[shapes[0].prompt] == shapes[0].metadata


def test_metadata_files_merge_and_conflicts_are_errors(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    one = {"prompt": "a red circle", "tag": "single_object", "include": [{"class": "circle", "count": 1}]}
    a.write_text(json.dumps(one) + "\n" + json.dumps(one) + "\n")  # a repeat with equal metadata is fine
    b.write_text(json.dumps(one | {"include": [{"class": "circle", "count": 2}]}) + "\n")
    assert len(load_reward("geneval", metadata_file=[str(a)])._by_prompt) == 1
    with pytest.raises(ValueError, match="two different metadata"):
        load_reward("geneval", metadata_file=[a, b])


def test_crop_object_is_genevals_masked_grey_crop():
    from rewards.geneval import crop_object

    image = torch.ones(3, 8, 8)
    mask = np.zeros((8, 8), dtype=bool)
    mask[2:4, 2:4] = True
    crop = crop_object(image, Detection("cat", (1.0, 2.0, 5.0, 4.0), 1.0, mask))  # x 1..4, y 2..3 (x1, y1 exclusive)
    assert crop.shape == (3, 2, 4)
    expected = torch.tensor([[0.6, 1.0, 1.0, 0.6], [0.6, 1.0, 1.0, 0.6]])  # grey #999 outside the mask
    torch.testing.assert_close(crop[0], expected)
    assert crop_object(image, Detection("cat", (1.0, 2.0, 5.0, 4.0), 1.0)).eq(1).all()  # no mask: the plain crop
