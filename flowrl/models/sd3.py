"""Adapter of diffusers' `StableDiffusion3Pipeline` (SD3-Medium, SD3.5-Medium, SD3.5-Large) for sampler and trainer.

What the sampler sees: latents `(16, H / 8, W / 8)` in the VAE's normalised space (``(z - shift) * scaling``) and
``v(x, sigma, cond)`` with classifier-free guidance inside (unconditional and conditional rows in ONE forward).
What the adapter hides: the three text encoders (CLIP-L, CLIP-G, T5-XXL; each prompt encoded once and cached), the
SD3 timestep convention ``t = 1000 sigma``, bf16 autocast, gradient checkpointing, LoRA and the VAE.

Fine-tuning, as in Flow-GRPO (research/flowgrpo_anchors.md 1.3):

* LoRA (``lora_rank > 0``, peft through diffusers' `add_adapter`, gaussian init): the base weights stay in the
  loading dtype and frozen, the LoRA weights are fp32; the reference policy is the same transformer with the adapter
  disabled (no second copy).
* full fine-tuning (``lora_rank = 0``): the transformer is trained in fp32 (master weights); the reference is a
  frozen copy in the loading dtype.

The rollout resolution (`height`, `width`, what `latent_shape` reports) can be changed at any time with
`set_resolution`, so training rollouts and evaluation samples use independent resolutions.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from flowrl.flow.grid import sd3_time_grid
from flowrl.models.pipeline_adapter import PipelineAdapter

# Flow-GRPO `scripts/train_sd3.py` (yifan123/flow_grpo): LoraConfig(r=32, lora_alpha=64, init_lora_weights="gaussian",
# target_modules=["attn.add_k_proj", "attn.add_q_proj", "attn.add_v_proj", "attn.to_add_out", "attn.to_k",
# "attn.to_out.0", "attn.to_q", "attn.to_v"]): every attention projection of the joint blocks, no feed-forward.
LORA_TARGETS = (
    "attn.to_q",
    "attn.to_k",
    "attn.to_v",
    "attn.to_out.0",
    "attn.add_q_proj",
    "attn.add_k_proj",
    "attn.add_v_proj",
    "attn.to_add_out",
)
LORA_RANK = 32  # Flow-GRPO SD3.5-M
LORA_ALPHA = 64.0  # Flow-GRPO SD3.5-M


class SD3Cond(NamedTuple):
    """Conditioning rows, one per prompt (the sampler selects rows with `take_rows`)."""

    embeds: torch.Tensor  # (P, 77 + L_t5, 4096): CLIP-L|G tokens padded to the T5 width, then T5 tokens
    pooled: torch.Tensor  # (P, 2048): CLIP-L and CLIP-G pooled projections concatenated


class SD3Adapter(PipelineAdapter):
    """A `StableDiffusion3Pipeline` as a policy (satisfies `flowrl.models.base.ImageAdapter`; the shared methods in
    `flowrl.models.pipeline_adapter`).

    Flow-GRPO's values: guidance_scale 4.5 (SD3.5-M), LoRA r 32 alpha 64 on `LORA_TARGETS`, resolution 512 (sizes
    are multiples of ``8 * patch_size`` = 16), max_sequence_length 256 (diffusers' default; flow_grpo
    `train_sd3.py` encodes at 128). The arguments are `PipelineAdapter`'s.
    """

    PIPELINE = "StableDiffusion3Pipeline"
    TEXT_ENCODERS = ("text_encoder", "text_encoder_2", "text_encoder_3")
    DOWNLOAD_HINT = "`hf download stabilityai/stable-diffusion-3.5-medium --local-dir <folder>`"

    LORA_TARGETS = LORA_TARGETS
    LORA_ALPHA = LORA_ALPHA
    MAX_SEQUENCE_LENGTH = 256

    @property
    def patch_size(self) -> int:
        return int(self.pipe.transformer.config.patch_size)

    # ------------------------------------------------------------------------------------------------ geometry

    @property
    def size_step(self) -> int:
        """Sizes are multiples of ``vae_scale_factor * patch_size`` (SD3.5-M is trained at 512 and 1024)."""
        return self.vae_scale_factor * self.patch_size

    @property
    def latent_channels(self) -> int:
        return int(self.pipe.transformer.config.in_channels)

    @property
    def default_shift(self) -> float:
        """The scheduler's static time shift (SD3.5-M: 3.0), for `flowrl.flow.grid.sd3_time_grid(shift=...)`."""
        return float(self.pipe.scheduler.config.shift)

    def time_grid(self, num_inference_steps: int) -> torch.Tensor:
        """The `(T + 1,)` sigmas StableDiffusion3Pipeline samples on (`flowrl.flow.grid.sd3_time_grid` with the
        scheduler's shift and training steps; the trainer's ``method.grid = "sd3"``)."""
        c = self.pipe.scheduler.config
        if c.get("use_dynamic_shifting", False) or c.get("shift_terminal") or c.get("use_karras_sigmas", False):
            raise ValueError(
                "The SD3 scheduler config uses dynamic shifting, a terminal shift or Karras sigmas; flowrl's SD3 grid "
                "reproduces the static shift only (SD3 / SD3.5 ship `shift: 3.0`). Use the model's own "
                "scheduler_config.json, or sample with method.grid=linear and an explicit method.kwargs.shift."
            )
        return sd3_time_grid(
            num_inference_steps, shift=self.default_shift, num_train_timesteps=int(c.num_train_timesteps)
        )

    # ------------------------------------------------------------------------------------------------ prompts

    @torch.no_grad()
    def _encode_uncached(self, prompts: list[str]) -> SD3Cond:
        embeds, _, pooled, _ = self.pipe.encode_prompt(
            prompt=prompts,
            prompt_2=None,
            prompt_3=None,
            device=self.device,
            do_classifier_free_guidance=False,
            max_sequence_length=self.max_sequence_length,
        )
        return SD3Cond(embeds, pooled)  # (P, L, D), (P, D')

    # ------------------------------------------------------------------------------------------------ velocity

    def _velocity(
        self,
        transformer: torch.nn.Module,
        dtype: torch.dtype,
        x: torch.Tensor,
        sigma: torch.Tensor,
        cond: SD3Cond,
        guidance_scale: float,
    ) -> torch.Tensor:
        """``v = v_u + w (v_c - v_u)`` with unconditional and conditional rows in ONE forward (w = 1: cond only)."""
        B = x.shape[0]
        t = 1000.0 * sigma.float().reshape(B).to(x.device)  # (B,) SD3 timestep convention
        out = self._cfg_forward(transformer, dtype, x, t, cond, guidance_scale)  # (n, 16, h, w) fp32
        return self._guide(out, guidance_scale)  # (B, 16, h, w)
