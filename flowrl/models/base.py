"""The interface every image model adapter implements (ShapeWorld, SD3 / SD3.5, FLUX.1).

The tree sampler needs only `velocity` (a `flowrl.flow.VelocityModel`); the trainer needs the rest. Adapters are
plain classes that satisfy this Protocol (no base class): see `flowrl/models/sd3.py` for the reference one.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Protocol

import torch


class ImageAdapter(Protocol):
    """A text-to-image flow model as a policy.

    Conventions: ``x_sigma = (1 - sigma) x0 + sigma noise``, ``v = noise - x0``, sigma in [0, 1] (the transformer may
    take ``1000 sigma``, that is the adapter's business); latents `(B, *latent_shape)`; `cond` is a NamedTuple of
    tensors with one row per prompt (the sampler selects rows with `flowrl.flow.velocity.take_rows`).
    """

    guidance_scale: float  # CFG scale of `velocity` (1 = conditional only)
    lora_rank: int  # 0 = full fine-tuning (reference = frozen copy); > 0 = LoRA (reference = adapter disabled)
    transformer: torch.nn.Module  # the module being trained
    height: int  # rollout resolution in pixels (`set_resolution` changes it)
    width: int

    @property
    def latent_shape(self) -> tuple[int, ...]: ...  # e.g. (4, 8, 8) ShapeWorld, (16, 64, 64) SD3 latents

    def trainable_parameters(self) -> list[torch.nn.Parameter]: ...

    def encode(self, prompts: list[str]) -> Any: ...  # cond rows, cached per prompt, no grad

    def velocity(self, x: torch.Tensor, sigma: torch.Tensor, cond: Any) -> torch.Tensor: ...  # CFG, with grad

    def conditional_velocity(self, x: torch.Tensor, sigma: torch.Tensor, cond: Any) -> torch.Tensor: ...  # no CFG

    def reference(self) -> contextlib.AbstractContextManager[None]: ...  # inside: reference_velocity is valid

    def reference_velocity(self, x: torch.Tensor, sigma: torch.Tensor, cond: Any) -> torch.Tensor: ...  # no grad

    def decode(self, x: torch.Tensor) -> torch.Tensor: ...  # latents -> (B, 3, H, W) float in [0, 1] on the CPU

    def encode_images(self, images: torch.Tensor) -> torch.Tensor: ...  # (B, 3, H, W) in [0, 1] -> latents

    def trained_state(self) -> dict[str, torch.Tensor]: ...  # what a checkpoint stores (LoRA or full weights)

    def load_trained_state(self, state: dict[str, torch.Tensor]) -> None: ...

    def save_trained(self, run_dir: Path) -> Path: ...  # final weights: LoRA (diffusers layout) or a model folder
