"""The ShapeWorld colour palette, shared by the renderer and the grader."""

from flowrl.shapes.grammar import COLORS

# Pure, maximally separated RGB colours (uint8). Every pair differs by at least 255 in one channel, so the grader's
# nearest-colour segmentation has a wide margin even on blurry model samples.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "magenta": (255, 0, 255),
    "cyan": (0, 255, 255),
}
BACKGROUND: tuple[int, int, int] = (0, 0, 0)

if tuple(PALETTE) != COLORS:
    raise RuntimeError(f"PALETTE keys {tuple(PALETTE)} must equal grammar.COLORS {COLORS} in the same order.")
