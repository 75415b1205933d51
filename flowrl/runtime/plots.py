"""Pictures of a run: metric curves (one subplot per key) and captioned sample grids, both saved as PNG.

Curves use matplotlib's object API with the Agg canvas (no pyplot global state, no display needed); grids use PIL
only. Files are written atomically (`atomic_write_bytes`).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont

from flowrl.runtime.run_dir import atomic_write_bytes


def plot_curves(
    metrics: list[dict],
    keys: list[str],
    out_png: str | Path,
    *,
    x_key: str = "step",
    title: str | None = None,
) -> list[str]:
    """Plot each metric in `keys` against `x_key` in its own subplot (stacked, shared x axis) and save a PNG.

    Keys that never appear with a value in `metrics` are skipped; `None` values (non-finite when logged) leave gaps.

    Args:
        metrics (`list[dict]`): Records as returned by `read_metrics`.
        keys (`list[str]`): Metric names to plot, in subplot order.
        out_png (`str` or `Path`): Destination PNG; its folder must exist.
        x_key (`str`, defaults to `"step"`): Record field used as x (e.g. `"wall_time"`).
        title (`str`, *optional*, defaults to `None`): Figure title.

    Returns:
        `list[str]`: the keys actually plotted.

    Raises:
        ValueError: none of `keys` was ever logged (the message lists the keys that were).
    """
    series = {}
    for key in keys:
        pts = [(r[x_key], r[key]) for r in metrics if key in r and r.get(x_key) is not None]
        if any(y is not None for _, y in pts):
            series[key] = pts
    if not series:
        logged = sorted({k for r in metrics for k in r} - {x_key})
        raise ValueError(f"None of the keys {keys} has a logged value; logged keys: {', '.join(logged) or '(none)'}.")
    fig = Figure(figsize=(7, 2.2 * len(series) + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(series), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (key, pts) in zip(axes, series.items(), strict=True):
        xs = [x for x, _ in pts]
        ys = [math.nan if y is None else y for _, y in pts]
        ax.plot(xs, ys, marker="." if len(xs) < 50 else None, linewidth=1.2)
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel(x_key)
    if title is not None:
        fig.suptitle(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    atomic_write_bytes(out_png, buf.getvalue())
    return list(series)


def _wrap(text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int) -> list[str]:
    # Greedy word wrap to `width` pixels; a word wider than a line is broken between characters.
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if font.getlength(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = ""
        for ch in word:
            if line and font.getlength(line + ch) > width:
                lines.append(line)
                line = ""
            line += ch
    if line:
        lines.append(line)
    return lines


def image_grid(
    images: torch.Tensor,
    *,
    nrow: int,
    captions: list[str] | None = None,
    scale: int = 4,
    padding: int = 2,
) -> Image.Image:
    """Tile images into one RGB picture, `nrow` images per row, each upscaled `scale` times (nearest neighbour).

    Without captions the picture is `ncol * (W*scale + padding) + padding` wide and
    `rows * (H*scale + padding) + padding` high, with `ncol = min(nrow, N)` and `rows = ceil(N / nrow)` (torchvision's
    `make_grid` meaning of `nrow`). Captions are drawn under each tile in PIL's default font, word-wrapped to the tile
    width; every tile gets the height of the longest caption.

    Args:
        images (`torch.Tensor` of shape `(N, 3, H, W)`): Float images in [0, 1] (clamped), on any device.
        nrow (`int`): Images per row.
        captions (`list[str]`, *optional*, defaults to `None`): One caption per image (e.g. prompt and reward).
        scale (`int`, defaults to `4`): Integer upscale factor, so 32x32 samples are visible.
        padding (`int`, defaults to `2`): White pixels between tiles and around the border.

    Returns:
        `PIL.Image.Image`: the RGB grid.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"image_grid expects images of shape (N, 3, H, W), got {tuple(images.shape)}; "
            "expand grayscale with `.expand(-1, 3, -1, -1)`."
        )
    n, _, h, w = images.shape
    if n == 0 or nrow < 1 or scale < 1 or padding < 0:
        raise ValueError(
            f"image_grid needs N >= 1, nrow >= 1, scale >= 1, padding >= 0; got {n}, {nrow}, {scale}, {padding}."
        )
    if captions is not None and len(captions) != n:
        raise ValueError(f"Got {len(captions)} captions for {n} images; pass one caption per image or None.")
    if not torch.isfinite(images).all():
        raise ValueError("image_grid got non-finite pixel values; the sampler produced NaN/inf images.")
    tiles = (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)  # (N, 3, H, W)
    tiles = tiles.permute(0, 2, 3, 1).cpu().numpy()  # (N, H, W, 3)
    tw, th = w * scale, h * scale
    font = ImageFont.load_default()
    wrapped = [_wrap(c, font, tw) for c in captions] if captions is not None else [[] for _ in range(n)]
    ascent, descent = font.getmetrics() if isinstance(font, ImageFont.FreeTypeFont) else (font.getbbox("Ag")[3], 1)
    line_h = ascent + descent
    cap_h = max(len(lines) for lines in wrapped) * line_h + (2 if captions is not None else 0)
    ncol, rows = min(nrow, n), math.ceil(n / nrow)
    grid = Image.new("RGB", (ncol * (tw + padding) + padding, rows * (th + cap_h + padding) + padding), "white")
    draw = ImageDraw.Draw(grid)
    for i in range(n):
        x = padding + (i % nrow) * (tw + padding)
        y = padding + (i // nrow) * (th + cap_h + padding)
        grid.paste(Image.fromarray(tiles[i]).resize((tw, th), Image.Resampling.NEAREST), (x, y))
        for j, line in enumerate(wrapped[i]):
            draw.text((x, y + th + 1 + j * line_h), line, fill="black", font=font)
    return grid


def save_image_grid(
    images: torch.Tensor,
    path: str | Path,
    *,
    nrow: int,
    captions: list[str] | None = None,
    scale: int = 4,
    padding: int = 2,
) -> Path:
    """`image_grid(images, ...)` saved as a PNG at `path` (atomically). Returns `path`."""
    buf = io.BytesIO()
    image_grid(images, nrow=nrow, captions=captions, scale=scale, padding=padding).save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())
