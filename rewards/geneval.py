"""GenEval's rules on detector output: object, count, colour and position checks, independent of any detector.

GenEval (Ghosh et al. 2023, "GenEval: An Object-Focused Framework for Evaluating Text-to-Image Alignment",
arXiv 2310.11513; code djghosh13/geneval @ af4902f, ``evaluation/evaluate_images.py``) scores an image against a
prompt's metadata (docs/geneval.md)::

    {"tag": "position", "include": [{"class": "couch", "count": 1},
                                    {"class": "bird", "count": 1, "position": ["left of", 0]}]}

Detections are first kept per class (`select_detections`): score > 0.3 (0.9 for ``counting`` prompts), best 16 per
class, greedy NMS off (IoU limit 1.0). Then, clause by clause (`evaluate_detections`):

* **count.** ``include`` needs at least ``count`` detections of its class; the best ``count`` are "found". An
  ``exclude`` clause fails at ``count`` or more (counting prompts exclude ``count + 1``: exact count).
* **colour.** The colour classifier labels the found objects' box crops (GenEval: CLIP ViT-L-14 zero-shot over 10
  colours on the mask composited on grey #999, then cropped); at least ``count`` must be the wanted colour.
* **position.** ``"position": [relation, j]``: every found object must stand in `relation` to every found object
  of clause ``j`` (which must itself have matched), by box centres (`relative_position`).

Three outputs per image (`GenEvalResult`):

* ``correct``: GenEval's pass (the rules above; the paper's accuracy).
* ``strict`` and ``score``: the training reward of Flow-GRPO (yifan123/reward-server @ 92ac29f,
  ``reward_server/gen_eval.py`` ``evaluate_reward``, called by flow_grpo ``rewards.py`` ``geneval_score``). Counts
  must be exact (``n == count``, ``exclude`` is not read); ``score`` is the mean of per-clause credits: count
  ``1 - |count - n| / count`` (negative when n > 2 count), colour ``1 - |count - k| / count`` for k objects of the
  wanted colour, position 1 or 0, and a 0 for the colour / position check of a clause whose count is off. With
  ``position_quirk=True`` (the server's behaviour) a failed relation adds a 0 *and* a 1 (the server appends 1.0
  after its loop whatever the loop found), so a failed relation of a one-object clause scores 2/3, not 1/2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch

TAGS: tuple[str, ...] = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
GENEVAL_COLORS: tuple[str, ...] = tuple("red orange yellow green blue purple pink brown black white".split())
"""The 10 colours of GenEval's CLIP colour classifier (``evaluate_images.py`` ``COLORS``)."""


class Detection(NamedTuple):
    """One detected object.

    Args:
        label (`str`): its class, in the metadata's vocabulary (GenEval: the 80 COCO names, ``object_names.txt``).
        box (`tuple[float, float, float, float]`): ``(x0, y0, x1, y1)`` in pixels, x right, y down.
        score (`float`): detector confidence in [0, 1].
        mask (`np.ndarray | None`): bool `(H, W)` instance mask, if the detector gives one (the colour crop uses it).
    """

    label: str
    box: tuple[float, float, float, float]
    score: float
    mask: np.ndarray | None = None


class Detector(Protocol):
    """Object detector: a batch of images to each image's detections (any order, any score).

    `labels` is the class vocabulary (metadata classes outside it are an error, not a silent miss).
    """

    labels: tuple[str, ...]

    def __call__(self, images: torch.Tensor) -> list[list[Detection]]:
        """`images` float `(B, 3, H, W)` in [0, 1] -> B lists of `Detection`."""
        ...


class ColourClassifier(Protocol):
    """Colour of each object of one class in one image (GenEval: CLIP zero-shot on the box crop, prompts
    "a photo of a {c} {class}", "a photo of a {c}-colored {class}", "a photo of a {c} object").

    `colors` is its vocabulary; it returns one of them per detection.
    """

    colors: tuple[str, ...]

    def __call__(self, image: torch.Tensor, detections: Sequence[Detection], label: str) -> list[str]:
        """`image` float `(3, H, W)` in [0, 1]; `detections` of class `label` -> one colour each."""
        ...


class GenEvalResult(NamedTuple):
    """GenEval's pass, Flow-GRPO's strict pass and partial score of one image, and why it failed."""

    correct: bool
    strict: bool
    score: float
    reasons: tuple[str, ...]


def crop_object(image: torch.Tensor, detection: Detection, *, background: float = 0.6) -> torch.Tensor:
    """GenEval's colour-classifier input (``ImageCrops``): the object's mask over a grey ``#999`` (0.6) canvas,
    cropped to its box (PIL ``crop``: x1, y1 exclusive, coordinates rounded). `(3, H, W)` -> `(3, h, w)`."""
    if detection.mask is not None:
        mask = torch.as_tensor(np.asarray(detection.mask, dtype=bool))  # (H, W)
        image = torch.where(mask, image, torch.full_like(image, background))
    x0, y0, x1, y1 = (round(float(v)) for v in detection.box)
    return image[:, max(y0, 0) : max(y1, y0 + 1), max(x0, 0) : max(x1, x0 + 1)]


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """GenEval's ``compute_iou``: inclusive pixel boxes, area ``(x1 - x0 + 1) (y1 - y0 + 1)``."""

    def area(box: Sequence[float]) -> float:
        return max(box[2] - box[0] + 1, 0) * max(box[3] - box[1] + 1, 0)

    inter = area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))
    union = area(a) + area(b) - inter
    return inter / union if union else 0.0


def select_detections(
    detections: Sequence[Detection],
    *,
    tag: str,
    threshold: float = 0.3,
    counting_threshold: float = 0.9,
    max_objects: int = 16,
    nms_threshold: float = 1.0,
) -> dict[str, list[Detection]]:
    """The detections GenEval reads, per class, best score first (``evaluate_image``).

    Keeps score > `threshold` (> `counting_threshold` when ``tag == "counting"``), the best `max_objects` of each
    class, then greedy NMS within a class: a box whose IoU with a kept one is >= `nms_threshold` is dropped (1.0,
    GenEval's default ``max_overlap``, keeps all). Classes with no detection are absent.
    """
    limit = counting_threshold if tag == "counting" else threshold
    by_label: dict[str, list[Detection]] = {}
    for det in sorted(detections, key=lambda d: -float(d.score)):  # stable: equal scores keep detector order
        if float(det.score) > limit:
            by_label.setdefault(det.label, []).append(det)
    kept: dict[str, list[Detection]] = {}
    for label, ordered in by_label.items():
        pending, chosen = ordered[:max_objects], []
        while pending:
            best = pending.pop(0)
            chosen.append(best)
            if nms_threshold < 1:
                pending = [d for d in pending if box_iou(best.box, d.box) < nms_threshold]
        kept[label] = chosen
    return kept


def relative_position(box_a: Sequence[float], box_b: Sequence[float], *, threshold: float = 0.1) -> set[str]:
    """Where A is relative to B (GenEval ``relative_position``).

    With centres ``c`` and sizes ``d`` of the boxes, ``o = c_A - c_B`` and ``r = sign(o) max(|o| - t (d_A + d_B),
    0)`` per axis (t = `threshold`, GenEval's ``position_threshold`` 0.1); no relation if ``|r| < 1e-3`` on both
    axes, else ``(dx, dy) = r / |o|`` and "left of" if dx < -0.5, "right of" if dx > 0.5, "above" if dy < -0.5,
    "below" if dy > 0.5 (image y grows downwards). A diagonal offset can give two relations.
    """
    boxes = np.array([box_a[:4], box_b[:4]], dtype=np.float64).reshape(2, 2, 2)  # (object, corner, xy)
    centre_a, centre_b = boxes.mean(axis=1)  # (2,) each
    size_a, size_b = np.abs(boxes[:, 1] - boxes[:, 0])  # (2,) each
    offset = centre_a - centre_b
    revised = np.maximum(np.abs(offset) - threshold * (size_a + size_b), 0) * np.sign(offset)
    if np.all(np.abs(revised) < 1e-3):
        return set()
    dx, dy = revised / np.linalg.norm(offset)
    relations = set()
    if dx < -0.5:
        relations.add("left of")
    if dx > 0.5:
        relations.add("right of")
    if dy < -0.5:
        relations.add("above")
    if dy > 0.5:
        relations.add("below")
    return relations


def _relation_failure(found, targets, relation: str, threshold: float) -> str | None:
    """The first (object, target) pair not in `relation`, as a reason; None when every pair is."""
    for obj in found:
        for target in targets:
            actual = relative_position(obj.box, target.box, threshold=threshold)
            if relation not in actual:
                return f"expected {obj.label} {relation} target, found {' and '.join(sorted(actual)) or 'no'} relation"
    return None


def evaluate_detections(
    image: torch.Tensor,
    objects: Mapping[str, Sequence[Detection]],
    metadata: Mapping,
    *,
    colour_classifier: ColourClassifier | None = None,
    position_threshold: float = 0.1,
    position_quirk: bool = True,
) -> GenEvalResult:
    """GenEval's pass and Flow-GRPO's strict pass and score of one image (rules in this module's docstring).

    Args:
        image (`torch.Tensor`): float `(3, H, W)` in [0, 1] (read only by the colour classifier).
        objects (`Mapping[str, Sequence[Detection]]`): per class, best first (`select_detections`).
        metadata (`Mapping`): ``include`` (and ``exclude``) clauses (docs/geneval.md; checked by
            `rewards.geneval_prompts.check_metadata`).
        colour_classifier (`ColourClassifier`, *optional*): needed when a clause has a ``color``.
        position_threshold (`float`, defaults to 0.1): `relative_position`'s t.
        position_quirk (`bool`, defaults to True): the reward server's extra credit 1 after a failed relation.
    """
    correct = strict = True
    credits: list[float] = []
    reasons: list[str] = []
    groups: list[Sequence[Detection] | None] = []  # GenEval: the found objects of each matched clause
    strict_groups: list[Sequence[Detection] | None] = []  # reward server: all objects of each matched clause
    for index, req in enumerate(metadata.get("include", [])):
        label, count = req["class"], int(req["count"])
        present = list(objects.get(label, []))
        found = present[:count]
        matched = len(found) >= count
        strict_matched = len(present) == count
        credits.append(1 - abs(count - len(present)) / count)
        if not matched:
            reasons.append(f"include {index}: expected {label} >= {count}, found {len(present)}")
        elif not strict_matched:
            reasons.append(f"include {index}: expected exactly {count} {label}, found {len(present)}")
        if not strict_matched and ("color" in req or "position" in req):
            credits.append(0.0)
        if matched and "color" in req:
            if colour_classifier is None:
                raise ValueError(
                    f"include {index} asks for a {req['color']} {label}, but no colour classifier was given; pass "
                    "colour_classifier= (a rewards.geneval.ColourClassifier, e.g. GenEval's CLIP zero-shot one)."
                )
            colours = list(colour_classifier(image, found, label))
            hits = colours.count(req["color"])
            if hits < count:
                matched = False
                seen = ", ".join(f"{colours.count(c)} {c}" for c in sorted(set(colours)))
                reasons.append(f"include {index}: expected {count} {req['color']} {label}, found {seen}")
            if strict_matched:
                credits.append(1 - abs(count - hits) / count)
                strict_matched = hits == count
        if "position" in req:
            relation, target = req["position"][0], int(req["position"][1])
            if matched:
                if groups[target] is None:
                    matched = False
                    reasons.append(f"include {index}: no target (include {target}) for {label} to be {relation}")
                else:
                    failure = _relation_failure(found, groups[target], relation, position_threshold)
                    if failure is not None:
                        matched = False
                        reasons.append(f"include {index}: {failure}")
            if strict_matched:
                if strict_groups[target] is None:
                    strict_matched = False
                    credits.append(0.0)
                else:
                    failure = _relation_failure(present, strict_groups[target], relation, position_threshold)
                    if failure is not None:
                        strict_matched = False
                        credits.append(0.0)
                    if failure is None or position_quirk:
                        credits.append(1.0)
        correct &= matched
        strict &= strict_matched
        groups.append(found if matched else None)
        strict_groups.append(present if strict_matched else None)
    for index, req in enumerate(metadata.get("exclude", [])):
        label, count = req["class"], int(req["count"])
        if len(objects.get(label, [])) >= count:
            correct = False
            reasons.append(f"exclude {index}: expected {label} < {count}, found {len(objects[label])}")
    score = sum(credits) / len(credits) if credits else 0.0
    return GenEvalResult(correct=correct, strict=strict, score=float(score), reasons=tuple(reasons))


def geneval_score(
    image: torch.Tensor,
    metadata: Mapping,
    *,
    detector: Detector,
    colour_classifier: ColourClassifier | None = None,
    **settings: Any,
) -> GenEvalResult:
    """Detect, select and evaluate one image (GenEval ``evaluate_image``).

    Args:
        image (`torch.Tensor`): float `(3, H, W)` in [0, 1].
        metadata (`Mapping`): ``tag``, ``include``, optional ``exclude`` (docs/geneval.md).
        detector (`Detector`): any detector; `flowrl.shapes.geneval.ShapeWorldDetector` for ShapeWorld images.
        colour_classifier (`ColourClassifier`, *optional*): needed by clauses with a ``color``.
        settings: the keyword settings of `judge_detections` (GenEval's and the reward server's by default).

    Returns:
        `GenEvalResult`: ``correct`` (GenEval), ``strict`` and ``score`` (Flow-GRPO's reward), ``reasons``.
    """
    return judge_detections(image, detector(image[None])[0], metadata, colour_classifier=colour_classifier, **settings)


def judge_detections(
    image: torch.Tensor,
    detections: Sequence[Detection],
    metadata: Mapping,
    *,
    colour_classifier: ColourClassifier | None = None,
    threshold: float = 0.3,
    counting_threshold: float = 0.9,
    max_objects: int = 16,
    nms_threshold: float = 1.0,
    position_threshold: float = 0.1,
    position_quirk: bool = True,
) -> GenEvalResult:
    """Select (`select_detections`) and evaluate (`evaluate_detections`) one image's detections; the defaults are
    GenEval's and the reward server's: threshold 0.3, counting 0.9, 16 objects a class, NMS off, position 0.1."""
    objects = select_detections(
        detections,
        tag=metadata["tag"],
        threshold=threshold,
        counting_threshold=counting_threshold,
        max_objects=max_objects,
        nms_threshold=nms_threshold,
    )
    return evaluate_detections(
        image,
        objects,
        metadata,
        colour_classifier=colour_classifier,
        position_threshold=position_threshold,
        position_quirk=position_quirk,
    )
