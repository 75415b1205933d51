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

import contextlib
import copy
import math
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import torch

from flowrl.flow.grid import flux_mu
from flowrl.models.sd3 import MixedPrecision, check_mixed_precision
from flowrl.models.weights import load_trained_state, trained_state

# Flow-GRPO `scripts/train_flux.py` (research/flowgrpo_anchors.md 1.3): "FLUX r=64, alpha=128, same attention targets
# plus ff.net.0.proj, ff.net.2, ff_context.*". The attention suffixes also match the single-stream blocks' attention.
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
    "ff_context.net.0.proj",
    "ff_context.net.2",
)
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


class FluxAdapter:
    """A `FluxPipeline` as a policy (satisfies `flowrl.models.base.ImageAdapter`).

    Args:
        pipe: a loaded `FluxPipeline` (all components on the device to run on).
        guidance_scale: true-CFG scale of `velocity`; 1 = none (FLUX.1-dev's recipes), > 1 doubles the batch.
        embedded_guidance: distilled guidance fed to the guidance embedding (FLUX.1-dev: 3.5 in Flow-GRPO, DanceGRPO,
            MixGRPO). Required when the transformer has `guidance_embeds` (dev), must be None otherwise (schnell).
        height, width: rollout resolution in pixels; multiples of ``2 * vae_scale_factor`` (16).
        lora_rank: 0 = full fine-tuning; > 0 = LoRA of this rank on `lora_targets` (Flow-GRPO FLUX: 64).
        lora_alpha: LoRA scale numerator (Flow-GRPO FLUX: 128).
        lora_targets: module name suffixes that receive LoRA (default `LORA_TARGETS`).
        gradient_checkpointing: recompute block activations in the backward pass.
        mixed_precision: 'bf16' = bf16 autocast on the pipeline's device; 'no' = the weights' dtype.
        max_sequence_length: T5 tokens per prompt (diffusers' FLUX default 512; Flow-GRPO 512).
        decode_batch_size: images per VAE decode call.
        detach_uncond: with true CFG (``guidance_scale > 1``), the unconditional half carries no gradient
            (flow_grpo's training form; see `flowrl.models.sd3.SD3Adapter`).
        reference_copy: full fine-tuning only: keep a frozen copy of the initial transformer as the reference
            policy. False saves that copy (24 GB for FLUX.1-dev in bf16) when the method has no KL term
            (kl_beta = 0, e.g. every published FLUX recipe); `reference()` then raises.
    """

    def __init__(
        self,
        pipe,
        *,
        guidance_scale: float = 1.0,
        embedded_guidance: float | None = 3.5,
        height: int = 512,
        width: int = 512,
        lora_rank: int = 0,
        lora_alpha: float = LORA_ALPHA,
        lora_targets: tuple[str, ...] = LORA_TARGETS,
        gradient_checkpointing: bool = False,
        mixed_precision: MixedPrecision = "no",
        max_sequence_length: int = 512,
        decode_batch_size: int = 8,
        reference_copy: bool = True,
        detach_uncond: bool = False,
    ) -> None:
        if lora_rank < 0:
            raise ValueError(f"lora_rank must be >= 0 (0 = full fine-tuning), got {lora_rank}.")
        if decode_batch_size < 1:
            raise ValueError(f"decode_batch_size must be >= 1, got {decode_batch_size}.")
        check_mixed_precision(mixed_precision)
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
        self.pipe = pipe
        self.guidance_scale = guidance_scale
        self.embedded_guidance = embedded_guidance
        self.lora_rank = lora_rank
        self.mixed_precision = mixed_precision
        self.max_sequence_length = max_sequence_length
        self.detach_uncond = detach_uncond
        self.decode_batch_size = decode_batch_size
        self.device = pipe.transformer.device
        self.vae_scale_factor = int(pipe.vae_scale_factor)
        self.set_resolution(height=height, width=width)
        for module in (pipe.text_encoder, pipe.text_encoder_2, pipe.vae):
            module.requires_grad_(False).eval()
        if pipe.vae.dtype != torch.float32:
            pipe.vae.to(torch.float32)  # decode in fp32
        self._cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._released = False
        self._uncond = self._encode_uncached([""])  # true-CFG negative prompt
        self.transformer = pipe.transformer
        base_dtype = self.transformer.dtype
        if lora_rank > 0:
            from peft import LoraConfig

            self.transformer.requires_grad_(False)
            self.transformer.add_adapter(
                LoraConfig(
                    r=lora_rank, lora_alpha=lora_alpha, init_lora_weights="gaussian", target_modules=list(lora_targets)
                )
            )
            for p in self.transformer.parameters():  # LoRA weights in fp32 (the base stays in its loading dtype)
                if p.requires_grad:
                    p.data = p.data.float()
            self.reference_transformer = None
        else:
            self.reference_transformer = (
                copy.deepcopy(self.transformer).requires_grad_(False).eval() if reference_copy else None
            )
            if base_dtype != torch.float32:
                self.transformer.to(torch.float32)  # fp32 master weights
            self.transformer.requires_grad_(True)
        self._dtype = base_dtype if lora_rank > 0 else torch.float32
        self._reference_dtype = base_dtype
        self._ids: dict[tuple[int, int], torch.Tensor] = {}
        if gradient_checkpointing:
            self.transformer.enable_gradient_checkpointing()

    @classmethod
    def from_folder(
        cls,
        folder: str | Path,
        *,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
        **kwargs,
    ) -> FluxAdapter:
        """Load a local `FluxPipeline` folder without contacting the hub and wrap it (`kwargs`: constructor's)."""
        from diffusers import FluxPipeline

        folder = Path(folder)
        if not (folder / "model_index.json").is_file():
            raise FileNotFoundError(
                f"{folder} is not a diffusers pipeline folder (no model_index.json). Download it once, e.g. "
                "`hf download black-forest-labs/FLUX.1-dev --local-dir <folder>` (gated: accept the licence on the "
                "hub first), or pass a hub id explicitly to FluxAdapter.from_hub."
            )
        pipe = FluxPipeline.from_pretrained(folder, dtype=dtype, local_files_only=True)
        return cls(pipe.to(device), **kwargs)

    @classmethod
    def from_hub(
        cls,
        repo_id: str,
        *,
        revision: str | None = None,
        dtype: torch.dtype = torch.bfloat16,
        device: str | torch.device = "cpu",
        **kwargs,
    ) -> FluxAdapter:
        """Download (or reuse the hub cache of) `repo_id`, e.g. 'black-forest-labs/FLUX.1-dev'; only when the user
        names a hub id."""
        from diffusers import FluxPipeline

        pipe = FluxPipeline.from_pretrained(repo_id, revision=revision, dtype=dtype)
        return cls(pipe.to(device), **kwargs)

    # ------------------------------------------------------------------------------------------------ geometry

    def set_resolution(self, *, height: int, width: int) -> None:
        """Set the rollout resolution in pixels (changes `latent_shape` and `default_shift`)."""
        step = 2 * self.vae_scale_factor
        if height <= 0 or width <= 0 or height % step or width % step:
            raise ValueError(
                f"height and width must be positive multiples of 2 * vae_scale_factor = {step} (2x2 latent "
                f"packing), got {height}x{width}. Round them to multiples of {step}."
            )
        self.height, self.width = height, width

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """`(16, H / 8, W / 8)`: unpacked latents (packing happens inside `velocity`)."""
        c = int(self.pipe.transformer.config.in_channels) // 4
        return (c, self.height // self.vae_scale_factor, self.width // self.vae_scale_factor)

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

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.transformer.parameters() if p.requires_grad]

    # ------------------------------------------------------------------------------------------------ prompts

    @torch.no_grad()
    def _encode_uncached(self, prompts: list[str]) -> FluxCond:
        if self._released:
            raise RuntimeError(
                f"Cannot encode {prompts[:3]}...: the text encoders were released (release_text_encoders). Encode "
                "every prompt before releasing them."
            )
        embeds, pooled, _ = self.pipe.encode_prompt(
            prompt=prompts, prompt_2=None, device=self.device, max_sequence_length=self.max_sequence_length
        )
        return FluxCond(embeds, pooled)  # (P, L, D), (P, D')

    def encode(self, prompts: list[str]) -> FluxCond:
        """Embeddings of `prompts` (`(P, L, 4096)`, `(P, 768)`), each prompt encoded once per adapter and cached."""
        missing = sorted({p for p in prompts if p not in self._cache})
        for p in missing:  # one prompt per pass: BLAS rounds differently at other batch sizes, and a prompt's
            out = self._encode_uncached([p])  # embedding must not depend on its batch (a resumed run meets others)
            self._cache[p] = (out.embeds[0], out.pooled[0])
        rows = [self._cache[p] for p in prompts]
        return FluxCond(torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows]))

    def release_text_encoders(self) -> None:
        """Drop CLIP-L and T5-XXL once every prompt is cached; `encode` then serves cached prompts only."""
        self.pipe.text_encoder = self.pipe.text_encoder_2 = None
        self._released = True

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
        tokens = pack_latents(x)  # (B, h/2 * w/2, 64)
        if guidance_scale == 1.0:
            embeds, pooled, hidden, timestep = cond.embeds, cond.pooled, tokens, t
        else:
            embeds = torch.cat([self._uncond.embeds.expand(B, -1, -1), cond.embeds])  # (2B, L, D)
            pooled = torch.cat([self._uncond.pooled.expand(B, -1), cond.pooled])  # (2B, D')
            hidden, timestep = torch.cat([tokens, tokens]), torch.cat([t, t])  # (2B, N, 64), (2B,)
        n = hidden.shape[0]
        guidance = None
        if self.embedded_guidance is not None:
            guidance = torch.full((n,), float(self.embedded_guidance), device=x.device, dtype=dtype)  # (n,)
        txt_ids = torch.zeros(embeds.shape[1], 3, device=x.device, dtype=dtype)  # (L, 3) text tokens sit at 0
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.mixed_precision == "bf16"):
            out = transformer(
                hidden_states=hidden.to(dtype),
                encoder_hidden_states=embeds.to(dtype),
                pooled_projections=pooled.to(dtype),
                timestep=timestep.to(dtype),
                img_ids=self._image_ids(h, w).to(dtype),
                txt_ids=txt_ids,
                guidance=guidance,
                return_dict=False,
            )[0].float()  # (n, N, 64) fp32 for the guidance arithmetic and the kernels
        v = unpack_latents(out, height=h, width=w)  # (n, 16, h, w)
        if guidance_scale == 1.0:
            return v
        v_uncond, v_cond = v.chunk(2)
        if self.detach_uncond:  # flow_grpo: the gradient flows through the conditional half only
            v_uncond = v_uncond.detach()
        return v_uncond + guidance_scale * (v_cond - v_uncond)

    def velocity(self, x: torch.Tensor, sigma: torch.Tensor, cond: FluxCond) -> torch.Tensor:
        """The policy's velocity `(B, 16, h, w)` fp32 (a `flowrl.flow.VelocityModel`)."""
        return self._velocity(self.transformer, self._dtype, x, sigma, cond, self.guidance_scale)

    def conditional_velocity(self, x: torch.Tensor, sigma: torch.Tensor, cond: FluxCond) -> torch.Tensor:
        """The policy's velocity without true CFG (embedded guidance still applies: it is part of the model)."""
        return self._velocity(self.transformer, self._dtype, x, sigma, cond, 1.0)

    @contextlib.contextmanager
    def reference(self) -> Iterator[None]:
        """Inside this context `reference_velocity` is the frozen initial policy (LoRA: adapter disabled)."""
        if self.lora_rank == 0 and self.reference_transformer is None:
            raise _no_reference()
        if self.reference_transformer is None:
            self.transformer.disable_adapters()
            try:
                yield
            finally:
                self.transformer.enable_adapters()
        else:
            yield

    @torch.no_grad()
    def reference_velocity(self, x: torch.Tensor, sigma: torch.Tensor, cond: FluxCond) -> torch.Tensor:
        """The reference policy's velocity (call inside `reference()` when using LoRA)."""
        if self.lora_rank > 0:  # inside `reference()` the adapter is disabled
            return self._velocity(self.transformer, self._dtype, x, sigma, cond, self.guidance_scale)
        if self.reference_transformer is None:
            raise _no_reference()
        return self._velocity(self.reference_transformer, self._reference_dtype, x, sigma, cond, self.guidance_scale)

    # ------------------------------------------------------------------------------------------------ images

    @torch.no_grad()
    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Unpacked latents `(B, 16, h, w)` -> images `(B, 3, 8h, 8w)` float32 in [0, 1] on the CPU, in batches."""
        vae = self.pipe.vae
        scale, shift = float(vae.config.scaling_factor), float(vae.config.shift_factor)
        images = []
        for chunk in x.split(self.decode_batch_size):
            z = chunk.to(self.device, torch.float32) / scale + shift
            images.append(((vae.decode(z, return_dict=False)[0].float().cpu() + 1.0) / 2.0).clamp(0.0, 1.0))
        return torch.cat(images)

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Images `(B, 3, H, W)` in [0, 1] -> unpacked latents `(B, 16, H / 8, W / 8)` (posterior mean, normalised)."""
        vae = self.pipe.vae
        scale, shift = float(vae.config.scaling_factor), float(vae.config.shift_factor)
        latents = []
        for chunk in images.split(self.decode_batch_size):
            z = vae.encode(chunk.to(self.device, torch.float32) * 2.0 - 1.0).latent_dist.mode()
            latents.append((z - shift) * scale)
        return torch.cat(latents)

    # ------------------------------------------------------------------------------------------------ weights

    def trained_state(self) -> dict[str, torch.Tensor]:
        """The LoRA weights (peft keys) or the full transformer state dict, detached copies."""
        return trained_state(self.transformer, lora=self.lora_rank > 0)

    def load_trained_state(self, state: dict[str, torch.Tensor]) -> None:
        load_trained_state(self.transformer, state, lora=self.lora_rank > 0)

    def save_trained(self, run_dir: Path) -> Path:
        """LoRA: `lora/pytorch_lora_weights.safetensors` (``FluxPipeline.load_lora_weights(run_dir / "lora")``).
        Full fine-tuning: `final/transformer/` (``FluxTransformer2DModel.from_pretrained``)."""
        if self.lora_rank > 0:
            from diffusers import FluxPipeline
            from peft.utils import get_peft_model_state_dict

            out = Path(run_dir) / "lora"
            FluxPipeline.save_lora_weights(
                out,
                transformer_lora_layers=get_peft_model_state_dict(self.transformer),
                # rank and alpha travel with the weights: without them a loader assumes alpha = rank (scale 1)
                transformer_lora_adapter_metadata=self.transformer.peft_config["default"].to_dict(),
                safe_serialization=True,
            )
            return out
        out = Path(run_dir) / "final" / "transformer"
        self.transformer.save_pretrained(out)
        return out


def _no_reference() -> RuntimeError:
    return RuntimeError(
        "This adapter was built with reference_copy=False (full fine-tuning without a reference policy): build it "
        "with reference_copy=True, or train with kl_beta = 0 (then no reference velocity is needed)."
    )
