"""Images for the VLM: checks, pixel values through the model's image processor, and image keys.

An image reaches the model through its prompt: `image_key` hashes the image's bytes to 16 hex digits, spelled as the
16 key tokens ``<k0>`` .. ``<kf>`` of the tokenizer at the place of the image in the prompt (one token per vision
patch). The policy (`flowrl.vlm.model.KeyedImageVLM`) holds the registered images; before each forward it looks the
key up, puts LLaVA's ``<image>`` token in place of the key tokens and passes the image's pixel values, so the text
trainer's rollout, log-probs, resume and evaluation code carry images without knowing about them.

Pixel values come from transformers' `CLIPImageProcessorPil` (PIL + numpy: torchvision does not import beside this
torch), saved in the model folder as ``preprocessor_config.json``.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

KEY_DIGITS = "0123456789abcdef"


def as_uint8_image(image: object, *, size: int) -> np.ndarray:
    """`image` as a uint8 (size, size, 3) array: a PIL image, a uint8 (H, W, 3) array, or a float (3, H, W) tensor
    in [0, 1] (the ShapeWorld renderer's and pipeline's output).

    Raises:
        TypeError: another type, or another dtype / layout.
        ValueError: another size than the vision tower's (`size` = vision_config.image_size).
    """
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - PIL is a dependency of transformers' image processor
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] != 3 or not image.is_floating_point():
            raise TypeError(
                f"A tensor image must be float (3, H, W) in [0, 1], got {image.dtype} {tuple(image.shape)}."
            )
        image = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise TypeError(
            f"Expected an image (PIL image, uint8 (H, W, 3) array or float (3, H, W) tensor), got "
            f"{type(image).__name__}."
        )
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise TypeError(f"An array image must be uint8 (H, W, 3) RGB, got {image.dtype} {image.shape}.")
    if image.shape[:2] != (size, size):
        raise ValueError(
            f"Image of size {image.shape[1]}x{image.shape[0]}: this VLM's vision tower takes {size}x{size} images "
            f"(vision_config.image_size). Resize it to {size}x{size} first (ShapeWorld renders at 32x32)."
        )
    return np.ascontiguousarray(image)


def image_key(image: np.ndarray) -> str:
    """16 hex digits of the SHA-256 of the uint8 (H, W, 3) image's shape and bytes."""
    digest = hashlib.sha256(repr(image.shape).encode() + image.tobytes()).hexdigest()
    return digest[:16]


def key_text(key: str, *, num_tokens: int = 16) -> str:
    """The prompt text of a key: ``<k3> <fa> ...`` (one key token per hex digit)."""
    if len(key) != num_tokens or any(d not in KEY_DIGITS for d in key):
        raise ValueError(f"An image key is {num_tokens} hex digits, got {key!r}.")
    return " ".join(f"<k{d}>" for d in key)


def pixel_values(processor, images: list[np.ndarray]) -> torch.Tensor:
    """`(B, 3, H, W)` float32 pixel values of uint8 images through the model's image processor."""
    return processor(images=list(images), return_tensors="pt")["pixel_values"].float()
