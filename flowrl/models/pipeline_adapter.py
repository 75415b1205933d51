"""What the SD3 and FLUX adapters share: one shallow base over composed parts.

A subclass names its diffusers pipeline (`PIPELINE`), its text encoders (`TEXT_ENCODERS`) and how to fetch it
(`DOWNLOAD_HINT`), and implements `_encode_uncached` (prompts -> cond), `_velocity` (the model's input layout and
time convention around `_cfg_forward`, the one forward with the CFG rows, and `_guide`), `size_step` and
`latent_channels`. Everything else is here, delegating to `TrainedTransformer` (LoRA or full fine-tuning, the
reference policy, trained state), `PromptCache` and the VAE codec (`pipeline_parts`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from flowrl.flow.guidance import cfg_rows, guide
from flowrl.models.pipeline_parts import MixedPrecision, PromptCache, check_settings, vae_decode, vae_encode
from flowrl.models.trained import TrainedTransformer
from flowrl.pipelines import pipeline_class


class PipelineAdapter:
    """A diffusers text-to-image pipeline as a policy (satisfies `flowrl.models.base.ImageAdapter`).

    Args:
        pipe: a loaded pipeline of class `PIPELINE` (all components on the device to run on).
        guidance_scale: CFG scale of `velocity` (1 = conditional only, one forward; > 1 doubles the batch).
        height, width: rollout resolution in pixels (`set_resolution`).
        lora_rank: 0 = full fine-tuning; > 0 = LoRA of this rank on `lora_targets`.
        lora_alpha: LoRA scale numerator, scale = alpha / rank (None = the subclass's `LORA_ALPHA`).
        lora_targets: module name suffixes that receive LoRA (None = the subclass's `LORA_TARGETS`).
        gradient_checkpointing: recompute the transformer blocks' activations in the backward pass (saves memory
            at ~30 % more compute).
        mixed_precision: 'bf16' = run the transformer under bf16 autocast on the pipeline's device; 'no' = run in
            the weights' dtype.
        max_sequence_length: T5 tokens per prompt (None = the subclass's `MAX_SEQUENCE_LENGTH`, diffusers'
            default). SD3 attends to the padding tokens, so the length changes the conditioning and the cost.
        decode_batch_size: images per VAE decode call (bounds the decoder's activation memory).
        reference_copy: full fine-tuning only: keep a frozen copy of the initial transformer as the reference
            policy. False saves that copy (24 GB for FLUX.1-dev in bf16) when the method has no KL term
            (kl_beta = 0, e.g. every published FLUX recipe); `reference()` then raises.
        detach_uncond: the unconditional half of the CFG velocity carries no gradient (flow_grpo `train_sd3.py`
            `compute_log_prob`: ``noise_pred_uncond.detach()``); the policy gradient then flows through the
            conditional branch only. Values are unchanged.
        prompt_check: called with every prompt list before it is encoded; raises on prompts the model cannot
            take (the ShapeWorld model checks its grammar's words). None = no check.
        final_writer: full fine-tuning only: writes the complete trained model into the folder it is given
            (ShapeWorld: the whole pipeline folder). None = `save_trained` writes `final/transformer/` only.

    A subclass implements ``_encode_uncached(prompts) -> cond`` (a NamedTuple, one row per prompt) and
    ``_velocity(transformer, dtype, x, sigma, cond, guidance_scale)``: its input layout and time convention around
    `_cfg_forward` (one forward, CFG rows included) and `_guide`.
    """

    PIPELINE = ""  # diffusers pipeline class name
    TEXT_ENCODERS: tuple[str, ...] = ()  # the pipeline's text encoder attributes
    DOWNLOAD_HINT = ""  # how to fetch a folder (shown when a folder is not a pipeline)
    LORA_TARGETS: tuple[str, ...] = ()
    LORA_ALPHA = 16.0
    MAX_SEQUENCE_LENGTH = 256

    def __init__(
        self,
        pipe,
        *,
        guidance_scale: float,
        height: int = 512,
        width: int = 512,
        lora_rank: int = 0,
        lora_alpha: float | None = None,
        lora_targets: tuple[str, ...] | None = None,
        gradient_checkpointing: bool = False,
        mixed_precision: MixedPrecision = "no",
        max_sequence_length: int | None = None,
        decode_batch_size: int = 8,
        reference_copy: bool = True,
        detach_uncond: bool = False,
        prompt_check: Callable[[list[str]], None] | None = None,
        final_writer: Callable[[Path], None] | None = None,
    ) -> None:
        check_settings(lora_rank=lora_rank, decode_batch_size=decode_batch_size, mixed_precision=mixed_precision)
        self.pipe = pipe
        self.guidance_scale = guidance_scale
        self.lora_rank = lora_rank
        self.mixed_precision = mixed_precision
        self.max_sequence_length = self.MAX_SEQUENCE_LENGTH if max_sequence_length is None else max_sequence_length
        self.detach_uncond = detach_uncond
        self.decode_batch_size = decode_batch_size
        self.device = pipe.transformer.device
        self.vae_scale_factor = int(pipe.vae_scale_factor)
        self.set_resolution(height=height, width=width)
        self.prompt_check = prompt_check
        self.final_writer = final_writer
        for name in (*self.TEXT_ENCODERS, "vae"):
            module = getattr(pipe, name)
            if module is not None:  # T5 may be absent (text_encoder_3=None), as in the ShapeWorld pipeline
                module.requires_grad_(False).eval()
        if pipe.vae.dtype != torch.float32:
            pipe.vae.to(torch.float32)  # decode in fp32, as Flow-GRPO does
        self.prompts = PromptCache(self._encode_uncached, check=prompt_check)
        self._uncond = self.prompts.uncached([""])  # the negative prompt of CFG is the empty string
        self.trained = TrainedTransformer(
            pipe.transformer,
            lora_rank=lora_rank,
            lora_alpha=self.LORA_ALPHA if lora_alpha is None else lora_alpha,
            lora_targets=self.LORA_TARGETS if lora_targets is None else lora_targets,
            reference_copy=reference_copy,
            gradient_checkpointing=gradient_checkpointing,
        )
        self.transformer = pipe.transformer
        self.reference_transformer = self.trained.reference_module

    # -------------------------------------------------------------------------------------------- geometry

    size_step: int  # a subclass's property: heights and widths are multiples of it
    latent_channels: int  # a subclass's property

    def set_resolution(self, *, height: int, width: int) -> None:
        """Set the rollout resolution in pixels (changes `latent_shape`); e.g. train at 512, evaluate at 1024."""
        step = self.size_step
        if height <= 0 or width <= 0 or height % step or width % step:
            raise ValueError(
                f"height and width must be positive multiples of {step} for {type(self).__name__} (VAE factor "
                f"{self.vae_scale_factor} x patch), got {height}x{width}. Round them to multiples of {step}."
            )
        self.height, self.width = height, width

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """`(C, H / 8, W / 8)` latents (FLUX: unpacked) for the current resolution."""
        return (self.latent_channels, self.height // self.vae_scale_factor, self.width // self.vae_scale_factor)

    # -------------------------------------------------------------------------------------------- loading

    @classmethod
    def _pipeline_class(cls) -> type:
        return pipeline_class(cls.PIPELINE)

    @classmethod
    def from_folder(
        cls, folder: str | Path, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu", **kwargs
    ) -> Any:
        """Load a local pipeline folder (`model_index.json`, `transformer/`, `vae/`, ...) without contacting the hub,
        and wrap it. `kwargs` are the constructor's keywords (guidance, resolution, LoRA, ...)."""
        folder = Path(folder)
        if not (folder / "model_index.json").is_file():
            raise FileNotFoundError(
                f"{folder} is not a diffusers pipeline folder (no model_index.json). Download it once, e.g. "
                f"{cls.DOWNLOAD_HINT}, or pass a hub id explicitly to {cls.__name__}.from_hub."
            )
        pipe = cls._pipeline_class().from_pretrained(folder, dtype=dtype, local_files_only=True)
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
    ) -> Any:
        """Download (or reuse the hub cache of) `repo_id`; only when the user names a hub id (`from_folder` never
        touches the network)."""
        pipe = cls._pipeline_class().from_pretrained(repo_id, revision=revision, dtype=dtype)
        return cls(pipe.to(device), **kwargs)

    # -------------------------------------------------------------------------------------------- prompts

    def encode(self, prompts: list[str]) -> Any:
        """Embeddings of `prompts` (a cond NamedTuple, one row per prompt), each prompt encoded once and cached."""
        return self.prompts(prompts)

    def release_text_encoders(self) -> None:
        """Drop the text encoders (T5-XXL alone is 4.7B parameters) once every prompt is cached; `encode` then
        serves cached prompts only."""
        for name in self.TEXT_ENCODERS:
            setattr(self.pipe, name, None)
        self.prompts.released = True

    # -------------------------------------------------------------------------------------------- velocity

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return self.trained.trainable_parameters()

    def velocity(self, x: torch.Tensor, sigma: torch.Tensor, cond: Any) -> torch.Tensor:
        """The policy's guided velocity `(B, C, h, w)` fp32 (a `flowrl.flow.VelocityModel`)."""
        return self._velocity(self.transformer, self.trained.dtype, x, sigma, cond, self.guidance_scale)

    def conditional_velocity(self, x: torch.Tensor, sigma: torch.Tensor, cond: Any) -> torch.Tensor:
        """The policy's velocity without CFG (the pretraining objective's; FLUX's embedded guidance still applies)."""
        return self._velocity(self.transformer, self.trained.dtype, x, sigma, cond, 1.0)

    def _cfg_forward(
        self,
        transformer: torch.nn.Module,
        dtype: torch.dtype,
        hidden: torch.Tensor,
        timestep: torch.Tensor,
        cond: Any,
        guidance_scale: float,
        **inputs: Any,
    ) -> torch.Tensor:
        """One forward of `transformer` on the CFG rows, output `(n, ...)` in fp32 (guidance arithmetic and the
        sampler's kernels run in fp32): the conditional rows alone (n = B) at ``guidance_scale == 1``, else the
        unconditional rows (the empty prompt, `cfg_rows`) then the conditional ones (n = 2B).

        Args:
            hidden: `(B, ...)` latents in the transformer's layout.
            timestep: `(B,)` time in the transformer's convention.
            cond: the prompts' cond, with `embeds` `(B, L, D)` and `pooled` `(B, D')`.
            inputs: further transformer keywords, already for the n rows (FLUX's ids and guidance embedding).
        Runs under bf16 autocast when ``mixed_precision == 'bf16'``."""
        if guidance_scale == 1.0:
            embeds, pooled = cond.embeds, cond.pooled
        else:
            embeds, pooled = cfg_rows(self._uncond, cond)  # (2B, L, D), (2B, D')
            hidden, timestep = torch.cat([hidden, hidden]), torch.cat([timestep, timestep])  # (2B, ...), (2B,)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.mixed_precision == "bf16"):
            return transformer(
                hidden_states=hidden.to(dtype),
                encoder_hidden_states=embeds.to(dtype),
                pooled_projections=pooled.to(dtype),
                timestep=timestep.to(dtype),
                return_dict=False,
                **inputs,
            )[0].float()

    def _guide(self, out: torch.Tensor, guidance_scale: float) -> torch.Tensor:
        """``v = v_u + w (v_c - v_u)`` `(B, ...)` of the `_cfg_forward` rows (`flowrl.flow.guidance.guide`, with
        `detach_uncond`); at ``w = 1`` the conditional rows as they are."""
        if guidance_scale == 1.0:
            return out
        return guide(out, guidance_scale, detach_uncond=self.detach_uncond)

    def reference(self) -> contextlib.AbstractContextManager[None]:
        """Inside this context `reference_velocity` is the frozen initial policy (LoRA: adapter disabled)."""
        return self.trained.reference()

    @torch.no_grad()
    def reference_velocity(self, x: torch.Tensor, sigma: torch.Tensor, cond: Any) -> torch.Tensor:
        """The reference policy's guided velocity (call inside `reference()` when using LoRA)."""
        module, dtype = self.trained.reference_forward()
        return self._velocity(module, dtype, x, sigma, cond, self.guidance_scale)

    # -------------------------------------------------------------------------------------------- images

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Latents `(B, C, h, w)` -> images `(B, 3, 8h, 8w)` float32 in [0, 1] on the CPU (`vae_decode`)."""
        return vae_decode(self.pipe.vae, x, batch_size=self.decode_batch_size, device=self.device)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Images `(B, 3, H, W)` in [0, 1] -> latents `(B, C, H / 8, W / 8)` in model space (`vae_encode`)."""
        return vae_encode(self.pipe.vae, images, batch_size=self.decode_batch_size, device=self.device)

    # -------------------------------------------------------------------------------------------- weights

    def trained_state(self) -> dict[str, torch.Tensor]:
        """The LoRA weights (peft keys) or the full transformer state dict, detached copies."""
        return self.trained.trained_state()

    def load_trained_state(self, state: dict[str, torch.Tensor]) -> None:
        self.trained.load_trained_state(state)

    def save_trained(self, run_dir: Path) -> Path:
        """LoRA: `lora/pytorch_lora_weights.safetensors` in diffusers' layout (``<PIPELINE>.load_lora_weights(
        run_dir / "lora")``). Full fine-tuning: `final_writer`'s folder `final/`, or `final/transformer/` (load it
        with the transformer class's ``from_pretrained`` and pass it as the pipeline's `transformer=`)."""
        if self.lora_rank > 0:
            return self.trained.save_lora(self._pipeline_class(), Path(run_dir) / "lora")
        if self.final_writer is not None:
            out = Path(run_dir) / "final"
            self.final_writer(out)
            return out
        out = Path(run_dir) / "final" / "transformer"
        self.transformer.save_pretrained(out)
        return out
