"""Adapter of the ShapeWorld model (`flowrl.shapes.model`) for the tree sampler and the image trainer.

The policy is the `SD3Transformer2DModel`; the text encoder is frozen and prompts are encoded once and cached.
Two ways to fine-tune, as for SD3.5:

* full fine-tuning (``lora_rank = 0``): the reference policy is a frozen deep copy of the initial transformer;
* LoRA (``lora_rank > 0``, peft through diffusers' `add_adapter`): the reference is the same transformer with the
  adapter disabled, so no second copy is held.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import torch

from flowrl.models.weights import load_trained_state, trained_state
from flowrl.shapes.model import PromptEmbeds, ShapeWorldModel, encode_prompts, load_shapeworld, save_shapeworld

# Attention and feed-forward projections of every SD3 joint block (the targets Flow-GRPO uses for SD3.5).
LORA_TARGETS = (
    "attn.to_q",
    "attn.to_k",
    "attn.to_v",
    "attn.to_out.0",
    "attn.add_q_proj",
    "attn.add_k_proj",
    "attn.add_v_proj",
    "attn.to_add_out",
    "ff.net.0.proj",
    "ff.net.2",
)


class ShapeCond(NamedTuple):
    """Conditioning rows, one per prompt (the sampler selects rows with `take_rows`)."""

    embeds: torch.Tensor  # (P, L, D)
    pooled: torch.Tensor  # (P, D)


class ShapeWorldAdapter:
    """The ShapeWorld model as a policy: velocity with CFG, cached prompts, decode, trainable / reference weights.

    Args:
        model: a loaded `ShapeWorldModel`.
        guidance_scale: CFG scale used by `velocity`.
        lora_rank: 0 = full fine-tuning; > 0 = LoRA of this rank on `LORA_TARGETS`.
        lora_alpha: LoRA scaling numerator (scale = alpha / rank).
    """

    def __init__(
        self, model: ShapeWorldModel, *, guidance_scale: float, lora_rank: int = 0, lora_alpha: float = 16.0
    ) -> None:
        if lora_rank < 0:
            raise ValueError(f"lora_rank must be >= 0 (0 = full fine-tuning), got {lora_rank}.")
        self.model = model
        self.guidance_scale = guidance_scale
        self.lora_rank = lora_rank
        self.transformer = model.transformer
        model.text_encoder.requires_grad_(False)
        self._cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._uncond = self._encode_uncached([""])
        if lora_rank > 0:
            from peft import LoraConfig

            self.transformer.requires_grad_(False)
            self.transformer.add_adapter(
                LoraConfig(
                    r=lora_rank, lora_alpha=lora_alpha, init_lora_weights="gaussian", target_modules=list(LORA_TARGETS)
                )
            )
            self.reference_transformer = None
        else:
            self.transformer.requires_grad_(True)
            self.reference_transformer = copy.deepcopy(self.transformer).requires_grad_(False).eval()

    @classmethod
    def from_folder(
        cls,
        folder: str | Path,
        *,
        guidance_scale: float,
        lora_rank: int = 0,
        lora_alpha: float = 16.0,
        device: str | torch.device = "cpu",
    ) -> ShapeWorldAdapter:
        """Load the model folder (e.g. `assets/shapeworld`) and wrap it."""
        return cls(
            load_shapeworld(folder, device=device),
            guidance_scale=guidance_scale,
            lora_rank=lora_rank,
            lora_alpha=lora_alpha,
        )

    # ------------------------------------------------------------------------------------------------ properties

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        size = int(self.model.meta["image_size"])
        return (3, size, size)

    @property
    def default_shift(self) -> float:
        """The SD3 time shift the model was trained and is sampled with."""
        return float(self.model.meta["shift"])

    def set_resolution(self, *, height: int, width: int) -> None:
        """ShapeWorld samples at its training size only; any other size is an error."""
        size = int(self.model.meta["image_size"])
        if (height, width) != (size, size):
            raise ValueError(
                f"The ShapeWorld model draws {size}x{size} images; got {height}x{width}. Leave "
                "model.resolution / eval.resolution at 0 for ShapeWorld."
            )

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.transformer.parameters() if p.requires_grad]

    # ------------------------------------------------------------------------------------------------ prompts

    @torch.no_grad()
    def _encode_uncached(self, prompts: list[str]) -> PromptEmbeds:
        return encode_prompts(self.model, prompts)

    def encode(self, prompts: list[str]) -> ShapeCond:
        """Embeddings of `prompts` (`(P, L, D)`, `(P, D)`), each prompt encoded once per adapter and cached."""
        missing = sorted({p for p in prompts if p not in self._cache})
        if missing:
            out = self._encode_uncached(missing)
            for i, p in enumerate(missing):
                self._cache[p] = (out.embeds[i], out.pooled[i])
        rows = [self._cache[p] for p in prompts]
        return ShapeCond(torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows]))

    # ------------------------------------------------------------------------------------------------ velocity

    def _velocity(
        self, transformer: torch.nn.Module, x: torch.Tensor, sigma: torch.Tensor, cond: ShapeCond
    ) -> torch.Tensor:
        """``v = v_u + w (v_c - v_u)`` with conditional and unconditional rows in ONE forward (w = 1: cond only)."""
        B = x.shape[0]
        dtype = next(transformer.parameters()).dtype
        t = 1000.0 * sigma.float().reshape(B)  # (B,) SD3 timestep convention
        if self.guidance_scale == 1.0:
            embeds, pooled, hidden, timestep = cond.embeds, cond.pooled, x, t
        else:
            embeds = torch.cat([self._uncond.embeds.expand(B, -1, -1), cond.embeds])  # (2B, L, D)
            pooled = torch.cat([self._uncond.pooled.expand(B, -1), cond.pooled])  # (2B, D)
            hidden, timestep = torch.cat([x, x]), torch.cat([t, t])  # (2B, 3, H, W), (2B,)
        out = transformer(
            hidden_states=hidden.to(dtype),
            encoder_hidden_states=embeds.to(dtype),
            pooled_projections=pooled.to(dtype),
            timestep=timestep.to(dtype),
        ).sample.float()
        if self.guidance_scale == 1.0:
            return out
        v_uncond, v_cond = out.chunk(2)  # (B, 3, H, W) each
        return v_uncond + self.guidance_scale * (v_cond - v_uncond)

    def velocity(self, x: torch.Tensor, sigma: torch.Tensor, cond: ShapeCond) -> torch.Tensor:
        """The policy's velocity: a `flowrl.flow.VelocityModel`."""
        return self._velocity(self.transformer, x, sigma, cond)

    def conditional_velocity(self, x: torch.Tensor, sigma: torch.Tensor, cond: ShapeCond) -> torch.Tensor:
        """The policy's velocity without guidance (the pretraining objective's velocity)."""
        guidance, self.guidance_scale = self.guidance_scale, 1.0
        try:
            return self._velocity(self.transformer, x, sigma, cond)
        finally:
            self.guidance_scale = guidance

    @contextlib.contextmanager
    def reference(self) -> Iterator[None]:
        """Inside this context `reference_velocity` is the frozen initial policy."""
        if self.reference_transformer is None:
            self.transformer.disable_adapters()
            try:
                yield
            finally:
                self.transformer.enable_adapters()
        else:
            yield

    @torch.no_grad()
    def reference_velocity(self, x: torch.Tensor, sigma: torch.Tensor, cond: ShapeCond) -> torch.Tensor:
        """The reference policy's velocity (call inside `reference()` when using LoRA)."""
        module = self.reference_transformer if self.reference_transformer is not None else self.transformer
        return self._velocity(module, x, sigma, cond)

    # ------------------------------------------------------------------------------------------------ images

    @staticmethod
    def decode(x: torch.Tensor) -> torch.Tensor:
        """Model space ([-1, 1] pixels) -> images in [0, 1], `(B, 3, H, W)` float32 on the CPU."""
        return ((x.detach().float().cpu() + 1.0) / 2.0).clamp(0.0, 1.0)

    # ------------------------------------------------------------------------------------------------ weights

    def trained_state(self) -> dict[str, torch.Tensor]:
        """The LoRA weights (peft keys) or the full transformer state dict, detached copies."""
        return trained_state(self.transformer, lora=self.lora_rank > 0)

    def load_trained_state(self, state: dict[str, torch.Tensor]) -> None:
        load_trained_state(self.transformer, state, lora=self.lora_rank > 0)

    def save_trained(self, run_dir: Path) -> Path:
        """LoRA: `lora/pytorch_lora_weights.safetensors` in diffusers' layout (``transformer.``-prefixed keys,
        loadable with `load_lora_adapter(..., prefix="transformer")` or a pipeline's `load_lora_weights`). Full
        fine-tuning: a complete model folder `final/` that `flowrl sample --model` loads."""
        if self.lora_rank > 0:
            from diffusers import StableDiffusion3Pipeline
            from peft.utils import get_peft_model_state_dict

            out = Path(run_dir) / "lora"
            StableDiffusion3Pipeline.save_lora_weights(
                out,
                transformer_lora_layers=get_peft_model_state_dict(self.transformer),
                transformer_lora_adapter_metadata=self.transformer.peft_config["default"].to_dict(),  # keeps alpha
                safe_serialization=True,
            )
            return out
        out = Path(run_dir) / "final"
        save_shapeworld(self.model, out, extra_meta={"finetuned_by": "flowrl train", "run_dir": str(run_dir)})
        return out
