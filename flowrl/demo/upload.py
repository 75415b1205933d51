"""Reading an uploaded image for scoring: any format Pillow opens, checked, as a model-sized RGB tensor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from flowrl.demo.inputs import DemoInputError

MAX_UPLOAD_PIXELS = 4096 * 4096


def read_upload(path: str | Path | None, size: int) -> torch.Tensor:
    """Open an uploaded image and resize it to the model's square resolution (nearest neighbour keeps colours).

    Args:
        path (`str | Path | None`): the file Gradio stored for the upload (never a path typed in the page).
        size (`int`): side in pixels the grader reads (the model's image size).

    Returns:
        `torch.Tensor`: float32 (3, size, size) in [0, 1].

    Raises:
        DemoInputError: no upload, not an image, truncated or too large.
    """
    if path is None:
        raise DemoInputError("Upload an image first (PNG or JPEG), then press Score.")
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_UPLOAD_PIXELS:
                raise DemoInputError(
                    f"The image is {img.width}x{img.height} pixels; the limit is {MAX_UPLOAD_PIXELS} pixels. "
                    "ShapeWorld images are small: upload a downscaled copy."
                )
            rgb = img.convert("RGB").resize((size, size), Image.Resampling.NEAREST)
    except DemoInputError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        reason = type(e).__name__
        raise DemoInputError(f"Could not read the upload as an image ({reason}); upload a PNG or JPEG.") from None
    array = np.asarray(rgb, dtype=np.float32) / 255.0  # (H, W, 3)
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()
