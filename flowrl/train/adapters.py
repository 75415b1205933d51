"""The model adapter of an image run (`model.kind`), loaded from a local folder."""

from __future__ import annotations

from pathlib import Path

import torch

from flowrl.config import ConfigError
from flowrl.models.base import ImageAdapter
from flowrl.models.shapeworld import load_shapeworld_adapter
from flowrl.runtime.paths import resolve_path
from flowrl.train.estimators.config import make_method
from flowrl.train.image_config import ImageTrainConfig

DEFAULT_RESOLUTION = 512  # SD3 / FLUX adapters' rollout size when model.resolution is 0


def resolve_model_path(path: str) -> Path:
    """A model folder given relative to the current directory or, failing that, to the flowrl repository."""
    hint = " Pass model.path=/path/to/folder; the shipped ShapeWorld model is assets/shapeworld."
    return resolve_path(path, what="model folder", folder=True, hint=hint)


def build_adapter(cfg: ImageTrainConfig, device: torch.device) -> ImageAdapter:
    """The model adapter of `cfg.model.kind`, loaded from a local folder."""
    m = cfg.model
    folder = resolve_model_path(m.path)
    # full fine-tuning keeps a frozen copy as the reference only when a KL term needs it (24 GB for FLUX.1-dev)
    extra = dict(
        gradient_checkpointing=m.gradient_checkpointing,
        mixed_precision=m.mixed_precision,
        reference_copy=make_method(cfg, 0).kl_beta > 0,
        lora_rank=m.lora_rank,
        lora_alpha=m.lora_alpha,
    )
    if m.kind == "shapeworld":  # an SD3 pipeline: trained through the SD3 adapter (flowrl.models.shapeworld)
        if m.max_sequence_length or m.detach_uncond:
            raise ConfigError(
                "model.max_sequence_length and model.detach_uncond apply to sd3 / flux pipelines; ShapeWorld has no "
                "T5 encoder and trains both CFG halves. Leave them at 0 / false."
            )
        if m.resolution:
            raise ConfigError("model.resolution is fixed for ShapeWorld (32 px); leave it at 0.")
        return load_shapeworld_adapter(folder, guidance_scale=cfg.guidance_scale, device=device, **extra)
    if m.resolution:
        extra.update(height=m.resolution, width=m.resolution)
    if m.max_sequence_length:
        extra.update(max_sequence_length=m.max_sequence_length)
    extra.update(detach_uncond=m.detach_uncond)
    if m.kind == "sd3":
        from flowrl.models.sd3 import SD3Adapter

        return SD3Adapter.from_folder(folder, guidance_scale=cfg.guidance_scale, device=device, **extra)
    from flowrl.models.flux import FluxAdapter

    return FluxAdapter.from_folder(
        folder, guidance_scale=cfg.guidance_scale, embedded_guidance=m.embedded_guidance, device=device, **extra
    )
