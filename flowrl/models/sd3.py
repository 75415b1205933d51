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

import contextlib
import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal, NamedTuple

import torch

from flowrl.flow.grid import sd3_time_grid
from flowrl.models.weights import load_trained_state, trained_state

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

MixedPrecision = Literal["no", "bf16"]


class SD3Cond(NamedTuple):
    """Conditioning rows, one per prompt (the sampler selects rows with `take_rows`)."""

    embeds: torch.Tensor  # (P, 77 + L_t5, 4096): CLIP-L|G tokens padded to the T5 width, then T5 tokens
    pooled: torch.Tensor  # (P, 2048): CLIP-L and CLIP-G pooled projections concatenated


def check_mixed_precision(mixed_precision: str) -> None:
    """Raise unless `mixed_precision` is one of the supported modes."""
    if mixed_precision not in ("no", "bf16"):
        raise ValueError(
            f"mixed_precision must be 'no' or 'bf16', got {mixed_precision!r}. fp16 autocast needs a gradient "
            "scaler, which the flowrl trainer does not run; use 'bf16' (or load the weights in fp16 with 'no')."
        )


class SD3Adapter:
    """A `StableDiffusion3Pipeline` as a policy (satisfies `flowrl.models.base.ImageAdapter`).

    Args:
        pipe: a loaded `StableDiffusion3Pipeline` (all components on the device to run on).
        guidance_scale: CFG scale of `velocity` (Flow-GRPO SD3.5-M: 4.5; 1 = conditional only, one forward).
        height, width: rollout resolution in pixels (Flow-GRPO trains SD3.5-M at 512); multiples of
            ``8 * patch_size`` (16 for SD3).
        lora_rank: 0 = full fine-tuning; > 0 = LoRA of this rank on `lora_targets` (Flow-GRPO: 32).
        lora_alpha: LoRA scale numerator, scale = alpha / rank (Flow-GRPO: 64).
        lora_targets: module name suffixes that receive LoRA (default: Flow-GRPO's SD3 list, `LORA_TARGETS`).
        gradient_checkpointing: recompute the transformer blocks' activations in the backward pass (saves memory
            at ~30 % more compute).
        mixed_precision: 'bf16' = run the transformer under bf16 autocast on the pipeline's device; 'no' = run in
            the weights' dtype.
        max_sequence_length: T5 tokens per prompt (diffusers' SD3 default 256; flow_grpo `train_sd3.py` encodes at
            128). SD3 attends to the padding tokens, so the length changes the conditioning and the cost.
        detach_uncond: the unconditional half of the CFG velocity carries no gradient (flow_grpo `train_sd3.py`
            `compute_log_prob`: ``noise_pred_uncond.detach()``); the policy gradient then flows through the
            conditional branch only. Values are unchanged.
        decode_batch_size: images per VAE decode call (bounds the decoder's activation memory).
        reference_copy: full fine-tuning only: keep a frozen copy of the initial transformer as the reference
            policy. False saves that copy (24 GB for FLUX.1-dev in bf16) when the method has no KL term
            (kl_beta = 0, e.g. every published FLUX recipe); `reference()` then raises.
        prompt_check: called with every prompt list before it is encoded; raises on prompts the model cannot
            take (the ShapeWorld model checks its grammar's words). None = no check.
        final_writer: full fine-tuning only: writes the complete trained model into the folder it is given
            (ShapeWorld: the whole pipeline folder). None = `save_trained` writes `final/transformer/` only.
    """

    def __init__(
        self,
        pipe,
        *,
        guidance_scale: float,
        height: int = 512,
        width: int = 512,
        lora_rank: int = 0,
        lora_alpha: float = LORA_ALPHA,
        lora_targets: tuple[str, ...] = LORA_TARGETS,
        gradient_checkpointing: bool = False,
        mixed_precision: MixedPrecision = "no",
        max_sequence_length: int = 256,
        decode_batch_size: int = 8,
        reference_copy: bool = True,
        detach_uncond: bool = False,
        prompt_check: Callable[[list[str]], None] | None = None,
        final_writer: Callable[[Path], None] | None = None,
    ) -> None:
        if lora_rank < 0:
            raise ValueError(f"lora_rank must be >= 0 (0 = full fine-tuning), got {lora_rank}.")
        if decode_batch_size < 1:
            raise ValueError(f"decode_batch_size must be >= 1, got {decode_batch_size}.")
        check_mixed_precision(mixed_precision)
        self.pipe = pipe
        self.guidance_scale = guidance_scale
        self.lora_rank = lora_rank
        self.mixed_precision = mixed_precision
        self.max_sequence_length = max_sequence_length
        self.detach_uncond = detach_uncond
        self.decode_batch_size = decode_batch_size
        self.device = pipe.transformer.device
        self.vae_scale_factor = int(pipe.vae_scale_factor)
        self.patch_size = int(pipe.transformer.config.patch_size)
        self.set_resolution(height=height, width=width)
        self.prompt_check = prompt_check
        self.final_writer = final_writer
        for module in (pipe.text_encoder, pipe.text_encoder_2, pipe.text_encoder_3, pipe.vae):
            if module is not None:  # T5 may be absent (text_encoder_3=None), as in the ShapeWorld pipeline
                module.requires_grad_(False).eval()
        if pipe.vae.dtype != torch.float32:
            pipe.vae.to(torch.float32)  # decode in fp32, as Flow-GRPO does
        self._cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._released = False
        self._uncond = self._encode_uncached([""])  # SD3's default negative prompt is the empty string
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
        self._dtype = base_dtype if lora_rank > 0 else torch.float32  # input dtype of the trained module
        self._reference_dtype = base_dtype
        if gradient_checkpointing:
            self.transformer.enable_gradient_checkpointing()

    @classmethod
    def from_folder(
        cls,
        folder: str | Path,
        *,
        guidance_scale: float,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
        **kwargs,
    ) -> SD3Adapter:
        """Load a local `StableDiffusion3Pipeline` folder (`model_index.json`, `transformer/`, `vae/`, ...) without
        contacting the hub, and wrap it. `kwargs` are the constructor's keywords (resolution, LoRA, ...)."""
        from diffusers import StableDiffusion3Pipeline

        folder = Path(folder)
        if not (folder / "model_index.json").is_file():
            raise FileNotFoundError(
                f"{folder} is not a diffusers pipeline folder (no model_index.json). Download it once, e.g. "
                "`hf download stabilityai/stable-diffusion-3.5-medium --local-dir <folder>`, or pass a hub id "
                "explicitly to SD3Adapter.from_hub."
            )
        pipe = StableDiffusion3Pipeline.from_pretrained(folder, dtype=dtype, local_files_only=True)
        return cls(pipe.to(device), guidance_scale=guidance_scale, **kwargs)

    @classmethod
    def from_hub(
        cls,
        repo_id: str,
        *,
        guidance_scale: float,
        revision: str | None = None,
        dtype: torch.dtype = torch.bfloat16,
        device: str | torch.device = "cpu",
        **kwargs,
    ) -> SD3Adapter:
        """Download (or reuse the hub cache of) `repo_id`, e.g. 'stabilityai/stable-diffusion-3.5-medium'. Only
        called when the user names a hub id; `from_folder` never touches the network."""
        from diffusers import StableDiffusion3Pipeline

        pipe = StableDiffusion3Pipeline.from_pretrained(repo_id, revision=revision, dtype=dtype)
        return cls(pipe.to(device), guidance_scale=guidance_scale, **kwargs)

    # ------------------------------------------------------------------------------------------------ geometry

    def set_resolution(self, *, height: int, width: int) -> None:
        """Set the rollout resolution in pixels (changes `latent_shape`); e.g. train at 512, evaluate at 1024."""
        step = self.vae_scale_factor * self.patch_size
        if height <= 0 or width <= 0 or height % step or width % step:
            raise ValueError(
                f"height and width must be positive multiples of vae_scale_factor * patch_size = {step}, got "
                f"{height}x{width}. Round them to multiples of {step} (SD3.5-M is trained at 512 and 1024)."
            )
        self.height, self.width = height, width

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """`(16, H / 8, W / 8)` for the current resolution."""
        c = int(self.pipe.transformer.config.in_channels)
        return (c, self.height // self.vae_scale_factor, self.width // self.vae_scale_factor)

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

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.transformer.parameters() if p.requires_grad]

    # ------------------------------------------------------------------------------------------------ prompts

    @torch.no_grad()
    def _encode_uncached(self, prompts: list[str]) -> SD3Cond:
        if self._released:
            raise RuntimeError(
                f"Cannot encode {prompts[:3]}...: the text encoders were released (release_text_encoders). Encode "
                "every prompt before releasing them."
            )
        embeds, _, pooled, _ = self.pipe.encode_prompt(
            prompt=prompts,
            prompt_2=None,
            prompt_3=None,
            device=self.device,
            do_classifier_free_guidance=False,
            max_sequence_length=self.max_sequence_length,
        )
        return SD3Cond(embeds, pooled)  # (P, L, D), (P, D')

    def encode(self, prompts: list[str]) -> SD3Cond:
        """Embeddings of `prompts` (`(P, L, 4096)`, `(P, 2048)`), each prompt encoded once per adapter and cached."""
        missing = sorted({p for p in prompts if p not in self._cache})
        if missing and self.prompt_check is not None:
            self.prompt_check(missing)
        for p in missing:  # one prompt per pass: BLAS rounds differently at other batch sizes, and a prompt's
            out = self._encode_uncached([p])  # embedding must not depend on its batch (a resumed run meets others)
            self._cache[p] = (out.embeds[0], out.pooled[0])
        rows = [self._cache[p] for p in prompts]
        return SD3Cond(torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows]))

    def release_text_encoders(self) -> None:
        """Drop the three text encoders (T5-XXL alone is 4.7B parameters) once every prompt is cached; `encode`
        then serves cached prompts only."""
        self.pipe.text_encoder = self.pipe.text_encoder_2 = self.pipe.text_encoder_3 = None
        self._released = True

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
        if guidance_scale == 1.0:
            embeds, pooled, hidden, timestep = cond.embeds, cond.pooled, x, t
        else:
            embeds = torch.cat([self._uncond.embeds.expand(B, -1, -1), cond.embeds])  # (2B, L, D)
            pooled = torch.cat([self._uncond.pooled.expand(B, -1), cond.pooled])  # (2B, D')
            hidden, timestep = torch.cat([x, x]), torch.cat([t, t])  # (2B, 16, h, w), (2B,)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.mixed_precision == "bf16"):
            out = transformer(
                hidden_states=hidden.to(dtype),
                encoder_hidden_states=embeds.to(dtype),
                pooled_projections=pooled.to(dtype),
                timestep=timestep.to(dtype),
                return_dict=False,
            )[0].float()  # guidance arithmetic and the sampler's kernels run in fp32
        if guidance_scale == 1.0:
            return out
        v_uncond, v_cond = out.chunk(2)  # (B, 16, h, w) each
        if self.detach_uncond:  # flow_grpo: the gradient flows through the conditional half only
            v_uncond = v_uncond.detach()
        return v_uncond + guidance_scale * (v_cond - v_uncond)

    def velocity(self, x: torch.Tensor, sigma: torch.Tensor, cond: SD3Cond) -> torch.Tensor:
        """The policy's guided velocity `(B, 16, h, w)` fp32 (a `flowrl.flow.VelocityModel`)."""
        return self._velocity(self.transformer, self._dtype, x, sigma, cond, self.guidance_scale)

    def conditional_velocity(self, x: torch.Tensor, sigma: torch.Tensor, cond: SD3Cond) -> torch.Tensor:
        """The policy's velocity without guidance (the pretraining objective's velocity)."""
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
    def reference_velocity(self, x: torch.Tensor, sigma: torch.Tensor, cond: SD3Cond) -> torch.Tensor:
        """The reference policy's guided velocity (call inside `reference()` when using LoRA)."""
        if self.lora_rank > 0:  # inside `reference()` the adapter is disabled
            return self._velocity(self.transformer, self._dtype, x, sigma, cond, self.guidance_scale)
        if self.reference_transformer is None:
            raise _no_reference()
        return self._velocity(self.reference_transformer, self._reference_dtype, x, sigma, cond, self.guidance_scale)

    # ------------------------------------------------------------------------------------------------ images

    @torch.no_grad()
    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Latents `(B, 16, h, w)` -> images `(B, 3, 8h, 8w)` float32 in [0, 1] on the CPU, `decode_batch_size` at a
        time; ``z = x / scaling_factor + shift_factor`` undoes the VAE normalisation."""
        vae = self.pipe.vae
        scale, shift = float(vae.config.scaling_factor), float(vae.config.shift_factor)
        images = []
        for chunk in x.split(self.decode_batch_size):
            z = chunk.to(self.device, torch.float32) / scale + shift
            images.append(((vae.decode(z, return_dict=False)[0].float().cpu() + 1.0) / 2.0).clamp(0.0, 1.0))
        return torch.cat(images)  # (B, 3, H, W)

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Images `(B, 3, H, W)` in [0, 1] -> latents `(B, 16, H / 8, W / 8)` in model space (posterior mean,
        ``(z - shift_factor) * scaling_factor``), e.g. targets of a flow-matching (SFT) term."""
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
        """LoRA: `lora/pytorch_lora_weights.safetensors` in diffusers' layout (load it with
        ``StableDiffusion3Pipeline.load_lora_weights(run_dir / "lora")``). Full fine-tuning: `final/transformer/`
        (load with ``SD3Transformer2DModel.from_pretrained`` and pass it as the pipeline's `transformer=`)."""
        if self.lora_rank > 0:
            from diffusers import StableDiffusion3Pipeline
            from peft.utils import get_peft_model_state_dict

            out = Path(run_dir) / "lora"
            StableDiffusion3Pipeline.save_lora_weights(
                out,
                transformer_lora_layers=get_peft_model_state_dict(self.transformer),
                # rank and alpha travel with the weights: without them a loader assumes alpha = rank (scale 1)
                transformer_lora_adapter_metadata=self.transformer.peft_config["default"].to_dict(),
                safe_serialization=True,
            )
            return out
        if self.final_writer is not None:
            out = Path(run_dir) / "final"
            self.final_writer(out)
            return out
        out = Path(run_dir) / "final" / "transformer"
        self.transformer.save_pretrained(out)
        return out


def _no_reference() -> RuntimeError:
    return RuntimeError(
        "This adapter was built with reference_copy=False (full fine-tuning without a reference policy): build it "
        "with reference_copy=True, or train with kl_beta = 0 (then no reference velocity is needed)."
    )
