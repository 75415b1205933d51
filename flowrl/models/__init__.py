"""Model adapters: turn a diffusers / transformers model into what the sampler and the trainer need.

An adapter provides a `VelocityModel` (``(x, sigma, cond) -> v``, classifier-free guidance inside), cached prompt
encoding, decoding to images in [0, 1], the trainable module (full fine-tuning or LoRA through peft) and the
reference policy (frozen copy, or the LoRA adapter disabled).
"""

from flowrl.models.shapeworld import ShapeCond, ShapeWorldAdapter

__all__ = ["ShapeCond", "ShapeWorldAdapter"]
