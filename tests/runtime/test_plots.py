"""Curve plots and sample grids. Run: pytest tests/train/test_plots.py -q"""

import pytest
import torch
from PIL import Image

from flowrl.runtime.plots import image_grid, plot_curves, save_image_grid

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_grid_size_arithmetic():
    # N=5, nrow=3 -> 3 columns, ceil(5/3) = 2 rows; tiles 32*4 = 128 px; padding 2:
    # width = 3 * (128 + 2) + 2 = 392, height = 2 * (128 + 2) + 2 = 262.
    grid = image_grid(torch.rand(5, 3, 32, 32), nrow=3, scale=4, padding=2)
    assert grid.size == (392, 262) and grid.mode == "RGB"


def test_grid_is_nearest_neighbour_and_places_tiles():
    images = torch.zeros(2, 3, 2, 2)
    images[1, 0] = 1.0  # second image pure red
    images[0, :, 0, 0] = 1.0  # first image: white top-left pixel
    grid = image_grid(images, nrow=2, scale=3, padding=1)
    assert grid.size == (2 * (6 + 1) + 1, 6 + 2)
    # first tile covers x, y in [1, 7); its top-left source pixel becomes a 3x3 white block
    assert {grid.getpixel((x, y)) for x in range(1, 4) for y in range(1, 4)} == {(255, 255, 255)}
    assert grid.getpixel((4, 1)) == (0, 0, 0)
    assert grid.getpixel((8, 1)) == (255, 0, 0)  # second tile starts at x = 1 + 6 + 1


def test_captions_add_wrapped_lines_under_tiles():
    images = torch.rand(4, 3, 8, 8)
    plain = image_grid(images, nrow=2, scale=4)
    short = image_grid(images, nrow=2, scale=4, captions=["a", "b", "c", "d"])
    long = image_grid(images, nrow=2, scale=4, captions=["a red circle left of a blue square", "b", "c", "d"])
    assert plain.width == short.width == long.width
    assert plain.height < short.height < long.height  # the long caption wraps onto more lines in a 32 px tile
    with pytest.raises(ValueError, match="one caption per image"):
        image_grid(images, nrow=2, captions=["a"])


def test_grid_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        image_grid(torch.rand(2, 1, 8, 8), nrow=2)
    with pytest.raises(ValueError, match="non-finite"):
        image_grid(torch.full((1, 3, 4, 4), float("nan")), nrow=1)


def test_save_image_grid_writes_png(tmp_path):
    path = save_image_grid(torch.rand(3, 3, 8, 8), tmp_path / "samples_000010.png", nrow=2, captions=["x", "y", "z"])
    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as im:
        assert im.size == image_grid(torch.rand(3, 3, 8, 8), nrow=2, captions=["x", "y", "z"]).size


def test_plot_curves_writes_png_and_skips_unlogged_keys(tmp_path):
    metrics = [{"step": s, "reward": s / 10, "kl": None if s == 3 else 0.01 * s} for s in range(8)]
    metrics.append({"step": 8, "eval_reward": 0.9})
    out = tmp_path / "curves.png"
    plotted = plot_curves(metrics, ["reward", "kl", "never_logged", "eval_reward"], out, title="run")
    assert plotted == ["reward", "kl", "eval_reward"]
    assert out.read_bytes()[:8] == PNG_MAGIC
    with Image.open(out) as im:
        im.verify()
    with pytest.raises(ValueError, match="logged keys: .*reward"):
        plot_curves(metrics, ["nope"], tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()
