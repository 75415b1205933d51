"""ShapeWorld as one implementation of GenEval's detector and colour-classifier hooks (`rewards.geneval`).

* `ShapeWorldDetector`: the grader's segmentation (`flowrl.shapes.grader`: nearest palette colour per pixel,
  4-connected components of at least `min_area` pixels, holes filled, shape by prototype) turned into GenEval
  detections: label = the shape ("circle"), box = the component's pixel extent ``(x0, y0, x1, y1)`` with x1, y1
  one past the last pixel, score 1.0, mask = the filled component. Each object is also reported under the
  compound label "<colour> <shape>" (see `shapes_metadata`).
* `PaletteColourClassifier`: the colour hook: the nearest palette colour (RGB, 0-255) to the per-channel median of
  the object's masked pixels (the whole box crop when a detection has no mask).
* `shapes_metadata`: a ShapeWorld prompt's GenEval metadata. Families map to tags: single -> ``colors`` (one
  coloured object; ``single_object`` when uncoloured), counting -> ``counting`` (include ``n``, exclude ``n + 1``:
  exact), two_objects -> ``two_object``, colors -> ``color_attr``, position -> ``position`` ("A left of B" is
  include [B, A with ``["left of", 0]``], GenEval's order). GenEval evaluates each clause on the best detections
  of its class, so two clauses of one class would read the same object; when both phrases name the same shape
  (``"a red circle and a blue circle"``) the classes are the compound labels ("red circle", "blue circle") and
  the colour is part of the class instead of a ``color`` check.

Differences from the `shapes` reward, by GenEval's rules: extra objects of unrequested classes are not penalised;
positions compare box centres with GenEval's dominant-direction rule (`rewards.geneval.relative_position`), so a
scene the renderer drew as "A left of B" with B far lower reads as "above" and fails.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from flowrl.shapes.grader import segment
from flowrl.shapes.grammar import COLORS, SHAPES, parse_prompt
from flowrl.shapes.palette import PALETTE
from rewards.geneval import Detection

_PALETTE = np.array([PALETTE[color] for color in COLORS], dtype=np.float32)  # (6, 3)
_NUMBER_WORDS = {2: "two", 3: "three", 4: "four"}


class ShapeWorldDetector:
    """GenEval detector for ShapeWorld images (rules in this module's docstring); no parameters, no weights."""

    labels: tuple[str, ...] = SHAPES + tuple(f"{color} {shape}" for color in COLORS for shape in SHAPES)

    def __call__(self, images: torch.Tensor) -> list[list[Detection]]:
        """`images` float `(B, 3, H, W)` in [0, 1] -> per image, one shape and one compound detection per object."""
        out = []
        for components in segment(images):
            detections = []
            for component in components:
                rows, cols = component.box
                mask = np.zeros(tuple(images.shape[2:]), dtype=bool)  # (H, W)
                mask[component.box] = component.mask
                xyxy = (float(cols.start), float(rows.start), float(cols.stop), float(rows.stop))
                detections.append(Detection(component.shape, xyxy, 1.0, mask))
                detections.append(Detection(f"{component.color} {component.shape}", xyxy, 1.0, mask))
            out.append(detections)
        return out


class PaletteColourClassifier:
    """GenEval colour hook for ShapeWorld: nearest palette colour to the median of the object's pixels."""

    colors: tuple[str, ...] = COLORS

    def __call__(self, image: torch.Tensor, detections: Sequence[Detection], label: str) -> list[str]:
        """`image` float `(3, H, W)` in [0, 1] -> one of `COLORS` per detection (`label` unused)."""
        del label
        pixels = image.detach().float().cpu().permute(1, 2, 0).numpy() * 255.0  # (H, W, 3)
        colours = []
        for det in detections:
            if det.mask is not None:
                chosen = pixels[np.asarray(det.mask, dtype=bool)]  # (n, 3)
            else:
                x0, y0, x1, y1 = (round(v) for v in det.box)
                chosen = pixels[y0:y1, x0:x1].reshape(-1, 3)
            median = np.median(chosen, axis=0)  # (3,)
            colours.append(COLORS[int(((_PALETTE - median) ** 2).sum(-1).argmin())])
        return colours


def _clause(shape: str, color: str | None, count: int, compound: bool) -> dict:
    if compound:
        return {"class": f"{color} {shape}", "count": count}
    return {"class": shape, "count": count, **({"color": color} if color is not None else {})}


def shapes_metadata(prompt: str) -> dict:
    """GenEval metadata of a ShapeWorld prompt (mapping in this module's docstring), ``prompt`` included.

    Example:
        >>> shapes_metadata("a red circle left of a blue square")["include"]
        [{'class': 'square', 'count': 1, 'color': 'blue'}, {'class': 'circle', 'count': 1, 'color': 'red', \
'position': ['left of', 0]}]
    """
    spec = parse_prompt(prompt)
    objects = spec.objects
    compound = len(objects) == 2 and objects[0].shape == objects[1].shape
    if compound and None in (objects[0].color, objects[1].color):
        raise ValueError(
            f"ShapeWorld prompt {prompt!r} names one shape twice without both colours; GenEval's rules read the best "
            "detections of a class for each clause, so they cannot tell the two apart. Use the `shapes` reward."
        )
    clauses = [_clause(obj.shape, obj.color, obj.count, compound) for obj in objects]
    if spec.family == "position":
        first, second = clauses
        return {"prompt": prompt, "tag": "position", "include": [second, {**first, "position": [spec.relation, 0]}]}
    if spec.family == "counting":
        (clause,) = clauses
        exclude = [{"class": clause["class"], "count": clause["count"] + 1}]
        return {"prompt": prompt, "tag": "counting", "include": clauses, "exclude": exclude}
    if spec.family == "single":
        return {"prompt": prompt, "tag": "colors" if objects[0].color else "single_object", "include": clauses}
    return {"prompt": prompt, "tag": "color_attr" if spec.family == "colors" else "two_object", "include": clauses}
