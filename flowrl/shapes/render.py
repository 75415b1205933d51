"""ShapeWorld renderer: draws the scene of any prompt with random sizes and non-overlapping random placement.

Images are float32 tensors of shape (3, H, W) with values in [0, 1] (divide uint8 RGB by 255); batches are
(B, 3, H, W). Shapes are drawn without anti-aliasing in pure palette colours on a plain background (black by
default), so every pixel is either the background or one palette colour.

Geometry at the default 32x32 (scaled linearly with `size`): each object is drawn in a square box of side
7-12 px (7-10 px when the scene has 3 or more objects); boxes keep a 1 px border to the image edge and a 2 px
gap to each other. Circles are discs, squares fill their box, triangles point up with their base at the bottom.
For "A <relation> B" the boxes are separated along the relation's axis (A's box entirely left of B's box for
"left of"), so the centroids differ by at least one box side.
"""

import functools
import random

import numpy as np
import torch

from flowrl.shapes.grammar import COLORS, SHAPES, PromptSpec, parse_prompt
from flowrl.shapes.palette import BACKGROUND, PALETTE

_MAX_TRIES = 400


@functools.cache
def shape_mask(shape: str, side: int) -> np.ndarray:
    """Boolean (side, side) mask of a shape drawn in a square box, sampled at pixel centres."""
    centres = np.arange(side) + 0.5  # (side,)
    ys, xs = np.meshgrid(centres, centres, indexing="ij")  # (side, side) each
    half = side / 2.0
    if shape == "square":
        mask = np.ones((side, side), dtype=bool)
    elif shape == "circle":
        mask = (xs - half) ** 2 + (ys - half) ** 2 <= half**2
    elif shape == "triangle":
        # Upward isosceles triangle: apex at the top centre, base along the bottom edge.
        mask = np.abs(xs - half) <= ys / 2.0
    else:
        raise ValueError(f"Unknown shape {shape!r}; valid shapes: {', '.join(SHAPES)}.")
    mask.setflags(write=False)
    return mask


def _side_range(num_objects: int, size: int) -> tuple[int, int]:
    scale = size / 32.0
    high = 12 if num_objects <= 2 else 10
    return max(4, round(7 * scale)), max(4, round(high * scale))


def _separated(a: tuple[int, int, int], b: tuple[int, int, int], gap: int) -> bool:
    (ax, ay, aside), (bx, by, bside) = a, b
    return ax + aside + gap <= bx or bx + bside + gap <= ax or ay + aside + gap <= by or by + bside + gap <= ay


def _relation_holds(a: tuple[int, int, int], b: tuple[int, int, int], relation: str) -> bool:
    (ax, ay, aside), (bx, by, bside) = a, b
    if relation == "left of":
        return ax + aside <= bx
    if relation == "right of":
        return bx + bside <= ax
    if relation == "above":
        return ay + aside <= by
    return by + bside <= ay  # "below"


def _layout(sides: list[int], size: int, relation: str | None, rng: random.Random) -> list[tuple[int, int, int]]:
    """Random (x, y, side) boxes: 1 px border, 2 px gaps, and the relation between box 0 and box 1 if given."""
    border, gap = 1, max(1, round(2 * size / 32))
    for _ in range(_MAX_TRIES):
        boxes: list[tuple[int, int, int]] = []
        for side in sides:
            for _ in range(_MAX_TRIES):
                box = (rng.randint(border, size - border - side), rng.randint(border, size - border - side), side)
                if all(_separated(box, other, gap) for other in boxes):
                    boxes.append(box)
                    break
            else:
                break
        if len(boxes) == len(sides) and (relation is None or _relation_holds(boxes[0], boxes[1], relation)):
            return boxes
    raise RuntimeError(f"Could not place objects of sides {sides} in a {size}x{size} image; use a larger size.")


def place_objects(
    spec: PromptSpec, *, rng: random.Random, size: int
) -> tuple[list[tuple[str, str]], list[tuple[int, int, int]]]:
    """The random draws of one scene satisfying `spec`, in order: a colour for each object whose colour is free,
    then sides and a layout. Returns the (colour, shape) of each object and its box (x, y, side) in pixels."""
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels so that 4 objects fit, got {size}.")
    objects = []  # (color, shape) per drawn object
    for obj in spec.objects:
        color = obj.color if obj.color is not None else rng.choice(COLORS)
        objects.extend([(color, obj.shape)] * obj.count)
    low, high = _side_range(len(objects), size)
    sides = [rng.randint(low, high) for _ in objects]
    return objects, _layout(sides, size, spec.relation, rng)


def render_spec(
    spec: PromptSpec,
    *,
    rng: random.Random,
    size: int = 32,
    background: tuple[int, int, int] = BACKGROUND,
) -> torch.Tensor:
    """Draw one scene that satisfies `spec`.

    Args:
        spec (`PromptSpec`): from `grammar.parse_prompt`. Objects whose colour is free get a uniformly random colour.
        rng (`random.Random`): source of all randomness (colours, sizes, positions).
        size (`int`, defaults to 32): image height and width in pixels, at least 16.
        background (`tuple[int, int, int]`, defaults to black): uint8 RGB background colour.

    Returns:
        `torch.Tensor`: float32 (3, size, size) with values in [0, 1].
    """
    objects, boxes = place_objects(spec, rng=rng, size=size)
    canvas = np.empty((size, size, 3), dtype=np.uint8)  # (H, W, 3)
    canvas[:] = background
    for (color, shape), (x, y, side) in zip(objects, boxes, strict=True):
        canvas[y : y + side, x : x + side][shape_mask(shape, side)] = PALETTE[color]
    return torch.from_numpy(canvas).permute(2, 0, 1).float().div_(255.0)  # (3, H, W)


def render_prompts(prompts: list[str], *, seed: int, size: int = 32) -> torch.Tensor:
    """Parse and draw a batch of prompts with one seeded `random.Random`.

    Args:
        prompts (`list[str]`): ShapeWorld prompts (see `grammar.parse_prompt`).
        seed (`int`): seed of the layout randomness; the same arguments give the same images.
        size (`int`, defaults to 32): image height and width.

    Returns:
        `torch.Tensor`: float32 (B, 3, size, size) in [0, 1].
    """
    rng = random.Random(seed)
    return torch.stack([render_spec(parse_prompt(prompt), rng=rng, size=size) for prompt in prompts])  # (B, 3, H, W)
