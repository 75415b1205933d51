"""ShapeWorld scenes: the objects drawn for a prompt, kept beside the image so questions can be answered from them.

`sample_scene(spec, rng)` makes the same random draws as `render.render_spec` in the same order (colours of free
objects, box sides, layout), so ``draw_scene(sample_scene(spec, rng=Random(s)))`` equals
``render_spec(spec, rng=Random(s))`` pixel for pixel (a test checks it). A scene from the grader's detections
(`scene_from_detections`) describes an image that was *generated* (Syn-GRPO's synthesised images).
"""

from __future__ import annotations

import random
from typing import NamedTuple

import numpy as np
import torch

from flowrl.shapes.grammar import COLORS, SHAPES, PromptSpec
from flowrl.shapes.palette import BACKGROUND, PALETTE
from flowrl.shapes.render import place_objects, shape_mask


class SceneObject(NamedTuple):
    """One drawn object: colour, shape and its square box (x, y of the top-left corner, side; pixels)."""

    color: str
    shape: str
    x: float
    y: float
    side: float

    @property
    def center(self) -> tuple[float, float]:
        return self.x + self.side / 2.0, self.y + self.side / 2.0


class Scene(NamedTuple):
    """The objects of one image, and its size in pixels."""

    objects: tuple[SceneObject, ...]
    size: int


def sample_scene(spec: PromptSpec, *, rng: random.Random, size: int = 32) -> Scene:
    """A random scene satisfying `spec` (the draws of `render.render_spec`, in its order)."""
    kinds, boxes = place_objects(spec, rng=rng, size=size)
    objects = tuple(SceneObject(c, s, x, y, side) for (c, s), (x, y, side) in zip(kinds, boxes, strict=True))
    return Scene(objects, size)


def draw_scene(scene: Scene, *, background: tuple[int, int, int] = BACKGROUND) -> torch.Tensor:
    """The float32 (3, H, W) image in [0, 1] of a sampled scene (integer boxes)."""
    canvas = np.empty((scene.size, scene.size, 3), dtype=np.uint8)  # (H, W, 3)
    canvas[:] = background
    for obj in scene.objects:
        x, y, side = int(obj.x), int(obj.y), int(obj.side)
        canvas[y : y + side, x : x + side][shape_mask(obj.shape, side)] = PALETTE[obj.color]
    return torch.from_numpy(canvas).permute(2, 0, 1).float().div_(255.0)  # (3, H, W)


def scene_from_detections(detections: list, *, size: int) -> Scene:
    """A scene from the grader's detections of one image (`grader.detect_objects`): the box is the square of the
    detection's area centred on its centroid (questions use colours, shapes, counts and centroids only)."""
    objects = []
    for d in detections:
        if d.shape not in SHAPES or d.color not in COLORS:
            raise ValueError(f"Detection {d} has a colour or shape outside ShapeWorld's palette.")
        side = float(np.sqrt(d.area))
        cx, cy = d.x, d.y
        objects.append(SceneObject(d.color, d.shape, cx - side / 2.0, cy - side / 2.0, side))
    return Scene(tuple(sorted(objects, key=lambda o: o.center)), size)
