"""Image grids with optional row captions, for the sample CLI and the docs."""

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont


def image_grid(
    images: torch.Tensor,
    *,
    num_rows: int,
    scale: int = 4,
    pad: int = 2,
    row_labels: list[str] | None = None,
    label_width: int = 0,
) -> Image.Image:
    """Arrange images row by row into one RGB picture, upscaled with nearest-neighbour.

    Args:
        images (`torch.Tensor`): float (N, 3, H, W) in [0, 1], N divisible by `num_rows`, filled row by row.
        num_rows (`int`): number of rows.
        scale (`int`, defaults to 4): integer upscaling of each image.
        pad (`int`, defaults to 2): grey gap in pixels between cells.
        row_labels (`list[str]`, *optional*): one caption per row, drawn left of the row.
        label_width (`int`, defaults to 0): caption column width in pixels (0 and labels: 7 px per character).

    Returns:
        `PIL.Image.Image`.
    """
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[0] % num_rows != 0:
        raise ValueError(
            f"images must be (N, 3, H, W) with N divisible by num_rows={num_rows}, got {tuple(images.shape)}."
        )
    if row_labels is not None and len(row_labels) != num_rows:
        raise ValueError(f"row_labels has {len(row_labels)} entries for {num_rows} rows; give one label per row.")
    num_cols = images.shape[0] // num_rows
    height, width = images.shape[2] * scale, images.shape[3] * scale
    if row_labels is not None and label_width == 0:
        label_width = 7 * max(len(label) for label in row_labels) + 8
    pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()  # (N, H, W, 3)
    pixels = pixels.repeat(scale, axis=1).repeat(scale, axis=2)  # (N, H*s, W*s, 3)
    canvas = np.full(
        (num_rows * (height + pad) + pad, label_width + num_cols * (width + pad) + pad, 3), 128, dtype=np.uint8
    )
    for index, cell in enumerate(pixels):
        row, col = divmod(index, num_cols)
        top, left = pad + row * (height + pad), label_width + pad + col * (width + pad)
        canvas[top : top + height, left : left + width] = cell
    picture = Image.fromarray(canvas)
    if row_labels is not None:
        draw, font = ImageDraw.Draw(picture), ImageFont.load_default()
        for row, label in enumerate(row_labels):
            draw.text((4, pad + row * (height + pad) + height // 2 - 5), label, fill=(255, 255, 255), font=font)
    return picture
