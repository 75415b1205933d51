"""Model adapters: turn a diffusers / transformers model into what the sampler and the trainer need.

An adapter provides a `VelocityModel` (``(x, sigma, cond) -> v``, classifier-free guidance inside), cached prompt
encoding, decoding to images in [0, 1], the trainable module (full fine-tuning or LoRA through peft) and the
reference policy (frozen copy, or the LoRA adapter disabled). Every adapter satisfies `ImageAdapter`.
"""

from flowrl.models.base import ImageAdapter
from flowrl.models.flux import FluxAdapter
from flowrl.models.sd3 import SD3Adapter
from flowrl.models.shapeworld import load_shapeworld_adapter

__all__ = ["FluxAdapter", "ImageAdapter", "SD3Adapter", "load_shapeworld_adapter"]
