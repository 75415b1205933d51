"""Adapter of diffusers' `FluxPipeline` (FLUX.1-dev, FLUX.1-schnell) for the sampler and the trainer.

What the sampler sees: UNPACKED latents `(16, H / 8, W / 8)` in the VAE's normalised space and ``v(x, sigma, cond)``.
The adapter packs them into FLUX's token sequence `(B, (h / 2) (w / 2), 64)` (2x2 patches), builds the RoPE image ids
`(h / 2 * w / 2, 3)` = (0, row, column) per token and unpacks the output, so every kernel, grid and tree in
`flowrl.flow` is unchanged. FLUX.1-dev is guidance-distilled: the guidance scale enters as an embedding
(`embedded_guidance`, 3.5 in Flow-GRPO, DanceGRPO and MixGRPO) and there is NO classifier-free guidance by default
(``guidance_scale = 1``, one forward); ``guidance_scale > 1`` runs "true CFG" with the empty negative prompt, the
unconditional and conditional rows in one forward.

FLUX's scheduler shifts time dynamically with the image's token count: ``mu`` is interpolated linearly between
(256 tokens, 0.5) and (4096 tokens, 1.15) and ``sigma' = e^mu / (e^mu + 1 / sigma - 1)``, which is SD3's static
shift with ``s = e^mu`` (`flowrl.flow.grid.flux_time_grid`). `default_shift` returns that ``e^mu`` for the current
resolution (512x512: 1024 tokens, mu = 0.63, shift 1.88). The FastVideo-based recipes (DanceGRPO, MixGRPO, G2RPO,
BranchGRPO) use a static shift of 3 instead; their presets say so.

The trainable module, the reference policy (LoRA disabled, or a frozen copy) and the saved weights work as in
`flowrl.models.sd3`.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch

from flowrl.flow.grid import flux_mu
from flowrl.models.pipeline_adapter import PipelineAdapter
from flowrl.models.sd3 import LORA_TARGETS as SD3_LORA_TARGETS

# Flow-GRPO `scripts/train_flux.py` (research/flowgrpo_anchors.md 1.3): "FLUX r=64, alpha=128, same attention targets
# plus ff.net.0.proj, ff.net.2, ff_context.*". The attention suffixes also match the single-stream blocks' attention.
LORA_TARGETS = (*SD3_LORA_TARGETS, "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj", "ff_context.net.2")
LORA_RANK = 64  # Flow-GRPO FLUX
LORA_ALPHA = 128.0  # Flow-GRPO FLUX


class FluxCond(NamedTuple):
    """Conditioning rows, one per prompt (the sampler selects rows with `take_rows`)."""

    embeds: torch.Tensor  # (P, L_t5, 4096) T5-XXL tokens
    pooled: torch.Tensor  # (P, 768) CLIP-L pooled output


def pack_latents(x: torch.Tensor) -> torch.Tensor:
    """`(B, C, h, w)` -> `(B, (h / 2) (w / 2), 4 C)`: FLUX's 2x2 patch tokens, row-major, channels then (dy, dx)."""
    B, C, h, w = x.shape
    x = x.reshape(B, C, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)  # (B, h/2, w/2, C, 2, 2)
    return x.reshape(B, (h // 2) * (w // 2), C * 4)


def unpack_latents(tokens: torch.Tensor, *, height: int, width: int) -> torch.Tensor:
    """Inverse of `pack_latents`: `(B, (h / 2) (w / 2), 4 C)` -> `(B, C, h, w)` with `h, w` the latent size."""
    B, _, D = tokens.shape
    x = tokens.reshape(B, height // 2, width // 2, D // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)  # (B, C, h/2, 2, w/2, 2)
    return x.reshape(B, D // 4, height, width)


def image_ids(height: int, width: int) -> torch.Tensor:
    """RoPE positions `(h / 2 * w / 2, 3)` of the packed tokens: (0, row, column), `h, w` the latent size."""
    rows = torch.arange(height // 2).repeat_interleave(width // 2)
    cols = torch.arange(width // 2).repeat(height // 2)
    return torch.stack([torch.zeros_like(rows), rows, cols], dim=1).float()


class FluxAdapter(PipelineAdapter):
    """A `FluxPipeline` as a policy (satisfies `flowrl.models.base.ImageAdapter`).

    Args:
        pipe: a loaded `FluxPipeline` (all components on the device to run on).
        guidance_scale: true-CFG scale of `velocity`; 1 = none (FLUX.1-dev's recipes), > 1 doubles the batch.
        embedded_guidance: distilled guidance fed to the guidance embedding (FLUX.1-dev: 3.5 in Flow-GRPO, DanceGRPO,
            MixGRPO). Required when the transformer has `guidance_embeds` (dev), must be None otherwise (schnell).
        Other arguments: `PipelineAdapter`'s (sizes are multiples of ``2 * vae_scale_factor`` = 16; Flow-GRPO FLUX:
        LoRA r 64 alpha 128 on `LORA_TARGETS`, max_sequence_length 512, diffusers' default).
    """

    PIPELINE = "FluxPipeline"
    TEXT_ENCODERS = ("text_encoder", "text_encoder_2")
    DOWNLOAD_HINT = (
        "`hf download black-forest-labs/FLUX.1-dev --local-dir <folder>` (gated: accept the licence on the hub first)"
    )

    LORA_TARGETS = LORA_TARGETS
    LORA_ALPHA = LORA_ALPHA
    MAX_SEQUENCE_LENGTH = 512

    def __init__(
        self, pipe, *, guidance_scale: float = 1.0, embedded_guidance: float | None = 3.5, **kwargs: Any
    ) -> None:
        has_embedding = bool(pipe.transformer.config.guidance_embeds)
        if has_embedding and embedded_guidance is None:
            raise ValueError(
                "This FLUX transformer has a guidance embedding (FLUX.1-dev): pass embedded_guidance (3.5 in the "
                "published recipes)."
            )
        if not has_embedding and embedded_guidance is not None:
            raise ValueError(
                f"embedded_guidance={embedded_guidance} but this FLUX transformer has no guidance embedding "
                "(guidance_embeds=False, e.g. FLUX.1-schnell): pass embedded_guidance=None."
            )
        self.embedded_guidance = embedded_guidance
        self._ids: dict[tuple[int, int], torch.Tensor] = {}  # RoPE image ids per latent size
        super().__init__(pipe, guidance_scale=guidance_scale, **kwargs)

    # ------------------------------------------------------------------------------------------------ geometry

    @property
    def size_step(self) -> int:
        """Sizes are multiples of ``2 * vae_scale_factor`` (2x2 latent packing); `default_shift` follows the size."""
        return 2 * self.vae_scale_factor

    @property
    def latent_channels(self) -> int:
        """Unpacked latent channels (packing happens inside `velocity`)."""
        return int(self.pipe.transformer.config.in_channels) // 4

    @property
    def image_seq_len(self) -> int:
        """Packed image tokens at the current resolution, ``(h / 2)(w / 2)``."""
        _, h, w = self.latent_shape
        return (h // 2) * (w // 2)

    @property
    def mu(self) -> float:
        """FLUX's dynamic-shift exponent for the current resolution, from the scheduler's config."""
        c = self.pipe.scheduler.config
        return flux_mu(
            self.image_seq_len,
            base_seq_len=int(c.base_image_seq_len),
            max_seq_len=int(c.max_image_seq_len),
            base_shift=float(c.base_shift),
            max_shift=float(c.max_shift),
        )

    @property
    def default_shift(self) -> float:
        """``e^mu``: the static shift equal to FLUX's dynamic shift at this resolution (`time_grid(shift=...)`)."""
        return math.exp(self.mu)

    # ------------------------------------------------------------------------------------------------ prompts

    @torch.no_grad()
    def _encode_uncached(self, prompts: list[str]) -> FluxCond:
        embeds, pooled, _ = self.pipe.encode_prompt(
            prompt=prompts, prompt_2=None, device=self.device, max_sequence_length=self.max_sequence_length
        )
        return FluxCond(embeds, pooled)  # (P, L, D), (P, D')

    # ------------------------------------------------------------------------------------------------ velocity

    def _image_ids(self, h: int, w: int) -> torch.Tensor:
        if (h, w) not in self._ids:
            self._ids[(h, w)] = image_ids(h, w).to(self.device)
        return self._ids[(h, w)]

    def _velocity(
        self,
        transformer: torch.nn.Module,
        dtype: torch.dtype,
        x: torch.Tensor,
        sigma: torch.Tensor,
        cond: FluxCond,
        guidance_scale: float,
    ) -> torch.Tensor:
        """Pack, one forward (unconditional + conditional rows when ``guidance_scale != 1``), unpack, guide."""
        B, _, h, w = x.shape
        t = sigma.float().reshape(B).to(x.device)  # (B,) FLUX takes sigma (the pipeline passes timestep / 1000)
        n = B if guidance_scale == 1.0 else 2 * B  # rows of the forward (`_cfg_forward`)
        guidance = None
        if self.embedded_guidance is not None:
            guidance = torch.full((n,), float(self.embedded_guidance), device=x.device, dtype=dtype)  # (n,)
        txt_ids = torch.zeros(cond.embeds.shape[1], 3, device=x.device, dtype=dtype)  # (L, 3) text tokens sit at 0
        out = self._cfg_forward(
            transformer,
            dtype,
            pack_latents(x),  # (B, h/2 * w/2, 64)
            t,
            cond,
            guidance_scale,
            img_ids=self._image_ids(h, w).to(dtype),
            txt_ids=txt_ids,
            guidance=guidance,
        )  # (n, N, 64) fp32
        v = unpack_latents(out, height=h, width=w)  # (n, 16, h, w)
        return self._guide(v, guidance_scale)  # (B, 16, h, w)
