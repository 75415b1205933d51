"""GenEval-style programmatic grader for ShapeWorld images: detect objects, score a prompt, strict pass/fail.

Detection (per image):

1. The background colour is the per-channel median of the border pixels.
2. Every pixel takes the nearest of {background, the 6 palette colours} in RGB (0-255 scale).
3. For each colour, 4-connected components (`scipy.ndimage.label`) smaller than `min_area` pixels
   (12 at 32x32, scaled with the image area) are dropped as noise; holes are filled.
4. Each component's shape is the nearest prototype in a feature space of (fill ratio of its bounding box, mean
   width of its top rows / box width, the same for its bottom rows), using about h/6 rows at each end. The
   prototypes were measured on rendered shapes of side 7-12 (see `SHAPE_PROTOTYPES`).

Scoring a prompt (see `score_detections`):

* Objects: wanted objects are matched one-to-one to detections, exact matches first (colour and shape; shape only
  for a colour-free phrase such as "a circle"), each worth 1; left-over wanted objects then match left-over
  detections of the right colour or the right shape for 1/3. The sum is divided by max(number wanted, number
  detected), so missing and extra objects both cost.
* Position prompts: score = 0.6 * object score + 0.4 * [relation holds], where the relation compares the centroids
  of the exact matches of A and B with a margin of 2 px at 32x32 (scaled with the width).
* Strict pass: every wanted object matched exactly, no extra object, and for position prompts the relation holds.
  This is stricter than GenEval, which tolerates extra objects.
"""

from typing import NamedTuple

import numpy as np
import torch
from scipy import ndimage

from flowrl.shapes.grammar import COLORS, PromptSpec, parse_prompt
from flowrl.shapes.palette import PALETTE

# (fill ratio, top-band width ratio, bottom-band width ratio), measured on rendered shapes of side 7-12:
# square 1.00/1.00/1.00; circle 0.76-0.85/0.43-0.67/0.43-0.67; triangle 0.50-0.51/0.08-0.14/0.89-1.00.
SHAPE_PROTOTYPES: dict[str, tuple[float, float, float]] = {
    "square": (1.0, 1.0, 1.0),
    "circle": (0.8, 0.55, 0.55),
    "triangle": (0.5, 0.1, 0.95),
}
_PROTOTYPE_NAMES = tuple(SHAPE_PROTOTYPES)
_PROTOTYPES = np.array([SHAPE_PROTOTYPES[name] for name in _PROTOTYPE_NAMES], dtype=np.float32)  # (3, 3)
_PALETTE = np.array([PALETTE[color] for color in COLORS], dtype=np.float32)  # (6, 3)
_PARTIAL_CREDIT = 1.0 / 3.0
_POSITION_OBJECT_WEIGHT = 0.6


class Detection(NamedTuple):
    """One detected object: colour, shape, centroid (x, y) in pixels, and area in pixels."""

    color: str
    shape: str
    x: float
    y: float
    area: int


class Component(NamedTuple):
    """One segmented object (steps 1-4 of the module docstring): its palette colour, its shape, its bounding box as
    ``(row slice, column slice)`` of the image, and its hole-filled mask `(h, w)` cropped to that box."""

    color: str
    shape: str
    box: tuple[slice, slice]
    mask: np.ndarray


class GradeResult(NamedTuple):
    """Output of `grade`.

    Args:
        score (`torch.Tensor`): float32 (B,) partial-credit score in [0, 1].
        strict (`torch.Tensor`): bool (B,) strict pass.
        family (`list[str]`): prompt family of each prompt.
    """

    score: torch.Tensor
    strict: torch.Tensor
    family: list[str]


def _check_images(images: object) -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(
            f"images must be a torch.Tensor of shape (B, 3, H, W) with float values in [0, 1], got "
            f"{type(images).__name__}. Convert a PIL image with torchvision-free code such as "
            "torch.from_numpy(np.asarray(img)).permute(2, 0, 1).float() / 255."
        )
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"images must have shape (B, 3, H, W) (RGB, channels first), got {tuple(images.shape)}. "
            "Add a batch dimension with images[None] for a single image, or permute channels-last input."
        )
    if not images.is_floating_point():
        raise TypeError(
            f"images must be a float tensor with values in [0, 1], got dtype {images.dtype}; divide uint8 by 255."
        )
    if images.shape[2] < 16 or images.shape[3] < 16:
        raise ValueError(f"images must be at least 16x16 pixels, got {images.shape[2]}x{images.shape[3]}.")
    low, high = images.min(), images.max()
    if low < -1e-3 or high > 1 + 1e-3:
        raise ValueError(
            f"images must have values in [0, 1], got min {float(low):.3f} and max {float(high):.3f}. Model outputs "
            "in [-1, 1] convert with (x + 1) / 2; clamp small overshoots with images.clamp(0, 1)."
        )


def _color_labels(images: torch.Tensor) -> np.ndarray:
    """Nearest-colour label per pixel: 0 = background, 1..6 = COLORS. (B, 3, H, W) -> (B, H, W) int64."""
    pixels = images.detach().to(device="cpu", dtype=torch.float32).permute(0, 2, 3, 1).numpy() * 255.0  # (B, H, W, 3)
    border = np.concatenate(
        [pixels[:, 0, :], pixels[:, -1, :], pixels[:, 1:-1, 0], pixels[:, 1:-1, -1]], axis=1
    )  # (B, 2W + 2H - 4, 3)
    background = np.median(border, axis=1)  # (B, 3)
    centres = np.concatenate(
        [background[:, None, :], np.broadcast_to(_PALETTE, (len(pixels), *_PALETTE.shape))], axis=1
    )  # (B, 7, 3)
    distances = ((pixels[:, :, :, None, :] - centres[:, None, None, :, :]) ** 2).sum(-1)  # (B, H, W, 7)
    return distances.argmin(-1)


def _shape_of(mask: np.ndarray) -> str:
    """Nearest prototype shape of a filled component mask cropped to its bounding box."""
    height, width = mask.shape
    rows = mask.sum(axis=1) / width  # (h,)
    band = max(1, round(height / 6))
    features = np.array([mask.mean(), rows[:band].mean(), rows[-band:].mean()], dtype=np.float32)  # (3,)
    return _PROTOTYPE_NAMES[int(((_PROTOTYPES - features) ** 2).sum(-1).argmin())]


def _components(labels: np.ndarray, *, min_area: int) -> list[Component]:
    components_found = []
    four_connected = ndimage.generate_binary_structure(2, 1)
    for color_index in np.unique(labels):
        if color_index == 0:
            continue
        components, count = ndimage.label(labels == color_index, structure=four_connected)  # (H, W)
        areas = np.bincount(components.ravel(), minlength=count + 1)
        for index, box in enumerate(ndimage.find_objects(components), start=1):
            if box is None or areas[index] < min_area:
                continue
            mask = ndimage.binary_fill_holes(components[box] == index)  # (h, w)
            components_found.append(Component(COLORS[color_index - 1], _shape_of(mask), box, mask))
    return components_found


def _min_area(height: int, width: int) -> int:
    return max(3, round(12 * height * width / 1024))


def segment(images: torch.Tensor) -> list[list[Component]]:
    """The objects of each image, segmented by steps 1-4 of the module docstring.

    Args:
        images (`torch.Tensor`): float (B, 3, H, W) in [0, 1].

    Returns:
        `list[list[Component]]`: per image, its components (order: by colour, then scan order).
    """
    _check_images(images)
    labels = _color_labels(images)  # (B, H, W)
    min_area = _min_area(images.shape[2], images.shape[3])
    return [_components(image_labels, min_area=min_area) for image_labels in labels]


def _detection(component: Component) -> Detection:
    ys, xs = np.nonzero(component.mask)
    rows, cols = component.box
    return Detection(
        color=component.color,
        shape=component.shape,
        x=float(xs.mean() + cols.start + 0.5),
        y=float(ys.mean() + rows.start + 0.5),
        area=int(component.mask.sum()),
    )


def detect_objects(images: torch.Tensor) -> list[list[Detection]]:
    """Detect the objects in each image.

    Args:
        images (`torch.Tensor`): float (B, 3, H, W) in [0, 1].

    Returns:
        `list[list[Detection]]`: per image, its detections (order: by colour, then scan order).
    """
    return [[_detection(component) for component in components] for components in segment(images)]


def _relation_holds(a: Detection, b: Detection, relation: str, margin: float) -> bool:
    if relation == "left of":
        return b.x - a.x > margin
    if relation == "right of":
        return a.x - b.x > margin
    if relation == "above":
        return b.y - a.y > margin
    return a.y - b.y > margin  # "below"; image y grows downwards


def score_detections(spec: PromptSpec, detections: list[Detection], *, margin: float = 2.0) -> tuple[float, bool]:
    """Partial-credit score and strict pass of one prompt spec against one image's detections.

    Args:
        spec (`PromptSpec`): the prompt's meaning.
        detections (`list[Detection]`): from `detect_objects`.
        margin (`float`, defaults to 2.0): minimum centroid offset in pixels for a relation to hold.

    Returns:
        `tuple[float, bool]`: the score in [0, 1] and the strict pass (rules in this module's docstring).
    """
    wanted = [(obj.color, obj.shape, phrase) for phrase, obj in enumerate(spec.objects) for _ in range(obj.count)]
    free = list(range(len(detections)))
    exact: dict[int, int] = {}  # wanted index -> detection index
    # Colour-specified objects first: they only accept exact matches, so they cannot take a detection that a
    # colour-free phrase needed more.
    order = sorted(range(len(wanted)), key=lambda index: wanted[index][0] is None)
    for index in order:
        color, shape, _ = wanted[index]
        for det in free:
            if detections[det].shape == shape and (color is None or detections[det].color == color):
                exact[index] = det
                free.remove(det)
                break
    partial = 0.0
    for index in order:
        if index in exact:
            continue
        color, shape, _ = wanted[index]
        for det in free:
            if detections[det].shape == shape or detections[det].color == color:
                partial += _PARTIAL_CREDIT
                free.remove(det)
                break
    denominator = max(len(wanted), len(detections), 1)
    object_score = (len(exact) + partial) / denominator
    objects_ok = len(exact) == len(wanted) == len(detections)
    if spec.relation is None:
        return object_score, objects_ok
    # Position prompts have exactly one object per phrase: wanted index 0 is A, wanted index 1 is B.
    relation_ok = (
        0 in exact
        and 1 in exact
        and _relation_holds(detections[exact[0]], detections[exact[1]], spec.relation, margin)
    )
    score = _POSITION_OBJECT_WEIGHT * object_score + (1.0 - _POSITION_OBJECT_WEIGHT) * float(relation_ok)
    return score, objects_ok and relation_ok


def grade(images: torch.Tensor, prompts: list[str]) -> GradeResult:
    """Grade a batch of images against their prompts (usable as an RL reward).

    Args:
        images (`torch.Tensor`): float (B, 3, H, W) with values in [0, 1], any device; H, W >= 16.
        prompts (`list[str]`): B ShapeWorld prompts (see `grammar.parse_prompt`).

    Returns:
        `GradeResult`: score float32 (B,), strict bool (B,) on the CPU, and the family of each prompt.

    Raises:
        TypeError / ValueError: for a non-tensor, a wrong shape or dtype, values outside [0, 1], a prompt count that
            differs from B, or a prompt outside the grammar (the message names the unknown word).
    """
    _check_images(images)
    if isinstance(prompts, str) or len(prompts) != images.shape[0]:
        got = "a single str" if isinstance(prompts, str) else f"{len(prompts)} prompts"
        raise ValueError(f"grade needs one prompt per image: got {got} for {images.shape[0]} images; pass a list.")
    specs = [parse_prompt(prompt) for prompt in prompts]
    margin = 2.0 * images.shape[3] / 32.0
    scores, stricts = [], []
    for spec, detections in zip(specs, detect_objects(images), strict=True):
        score, strict = score_detections(spec, detections, margin=margin)
        scores.append(score)
        stricts.append(strict)
    return GradeResult(
        score=torch.tensor(scores, dtype=torch.float32),
        strict=torch.tensor(stricts, dtype=torch.bool),
        family=[spec.family for spec in specs],
    )
