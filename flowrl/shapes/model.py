"""The ShapeWorld text-to-image model: a real diffusers `StableDiffusion3Pipeline`, tiny, in latent space.

Components (all library classes, so the CPU default runs the same adapter, LoRA and checkpoint code as SD3.5-M):

* `diffusers.AutoencoderKL`: 32x32x3 renders <-> 8x8x4 latents (trained by `scripts/pretrain_shapes_vae.py`);
  its config's `shift_factor` / `scaling_factor` normalise latents to mean 0, std 1, as SD3's do.
* `diffusers.SD3Transformer2DModel` on the latents: patch 2, so 16 image tokens (the pixel model had 64).
* two `transformers.CLIPTextModelWithProjection` (``text_encoder``, ``text_encoder_2``): the pipeline concatenates
  their penultimate hidden states (the joint-attention sequence) and their pooled projections; T5 is absent
  (``text_encoder_3 = None``), so the pipeline appends `max_sequence_length` zero tokens, which flowrl keeps at the
  value the model was trained with (`meta["max_sequence_length"]`, 0 by default: no padding tokens).
* `transformers.CLIPTokenizer` over the grammar's words (`flowrl.shapes.tokenizer`), the same for both encoders.
* `diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0)`.

Flow convention (rectified flow, as SD3): x_sigma = (1 - sigma) * x0 + sigma * noise, v = noise - x0, timestep =
1000 * sigma, on normalised latents x0 = (mode - shift_factor) * scaling_factor.

The folder (`save_shapeworld` / `load_shapeworld`) is an ordinary pipeline folder plus flowrl's metadata::

    folder/model_index.json, transformer/, vae/, text_encoder/, text_encoder_2/, tokenizer/, tokenizer_2/,
    scheduler/, flowrl_shapeworld.json (sampling defaults, training provenance)

so diffusers alone samples from it (``text_encoder_3=None, tokenizer_3=None`` is diffusers' documented way of
loading SD3 without T5; ``max_sequence_length=0`` appends no zero tokens, as in training)::

    pipe = StableDiffusion3Pipeline.from_pretrained(folder, text_encoder_3=None, tokenizer_3=None)
    image = pipe("two red circles", num_inference_steps=10, guidance_scale=4.0, max_sequence_length=0).images[0]
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel
from transformers import CLIPTextConfig, CLIPTextModelWithProjection

from flowrl.flow.guidance import cfg_rows, guide
from flowrl.pipelines import pipeline_class
from flowrl.shapes.tokenizer import DEFAULT_MAX_LENGTH, build_tokenizer, check_words

if TYPE_CHECKING:
    from diffusers import StableDiffusion3Pipeline

META_FILE = "flowrl_shapeworld.json"


class PromptEmbeds(NamedTuple):
    """Text conditioning of a batch.

    Args:
        embeds (`torch.Tensor`): (B, L, D_joint) sequence for the transformer's joint attention.
        pooled (`torch.Tensor`): (B, P) pooled projections of both encoders.
    """

    embeds: torch.Tensor
    pooled: torch.Tensor


class ShapeWorldModel(NamedTuple):
    """A loaded ShapeWorld model: the pipeline and flowrl's metadata.

    Args:
        pipe (`StableDiffusion3Pipeline`): transformer, vae, two CLIP text encoders and tokenizers, scheduler.
        meta (`dict`): image_size, latent_shape, shift, guidance_scale, num_inference_steps, max_sequence_length, ...
    """

    pipe: StableDiffusion3Pipeline
    meta: dict

    @property
    def transformer(self) -> SD3Transformer2DModel:
        return self.pipe.transformer

    @property
    def vae(self) -> AutoencoderKL:
        return self.pipe.vae

    @property
    def text_encoders(self) -> tuple[CLIPTextModelWithProjection, CLIPTextModelWithProjection]:
        return self.pipe.text_encoder, self.pipe.text_encoder_2

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(C, h, w) of the transformer's input, e.g. (4, 8, 8)."""
        return tuple(self.meta["latent_shape"])

    def encode(self, prompts: list[str]) -> PromptEmbeds:
        """Encode prompts (the empty prompt "" is the unconditional input); see `encode_prompts`."""
        return encode_prompts(self, prompts)

    def velocity(
        self, x: torch.Tensor, sigma: torch.Tensor | float, cond: PromptEmbeds, *, guidance_scale: float = 1.0
    ) -> torch.Tensor:
        """Velocity with classifier-free guidance; see `velocity`."""
        return velocity(self, x, sigma, cond, guidance_scale=guidance_scale)


def _clip(tokenizer, *, hidden: int, layers: int, heads: int, max_length: int) -> CLIPTextModelWithProjection:
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_attention_heads=heads,
        num_hidden_layers=layers,
        projection_dim=hidden,
        max_position_embeddings=max_length,
        hidden_act="gelu",
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModelWithProjection(config)


def build_vae(
    *, image_size: int = 32, block_out_channels: tuple[int, ...] = (32, 64, 64), latent_channels: int = 4
) -> AutoencoderKL:
    """A freshly initialised ShapeWorld `AutoencoderKL` (0.95M parameters by default): len(block_out_channels) - 1
    downsamplings, so 32x32x3 <-> 8x8x4 with three blocks (latent_probe: 98.5% of strict grader passes kept after
    10 CPU minutes of training). Train it with `scripts/pretrain_shapes_vae.py`."""
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(block_out_channels),
        up_block_types=("UpDecoderBlock2D",) * len(block_out_channels),
        block_out_channels=tuple(block_out_channels),
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=16,
        sample_size=image_size,
        shift_factor=0.0,  # set from the trained latents' statistics by scripts/pretrain_shapes_vae.py
        scaling_factor=1.0,
    )


def build_shapeworld(
    vae: AutoencoderKL | None = None,
    *,
    patch_size: int = 2,
    num_layers: int = 6,
    num_attention_heads: int = 4,
    attention_head_dim: int = 32,
    text_hidden_size: int = 64,
    text_layers: int = 2,
    text_heads: int = 4,
    max_length: int = DEFAULT_MAX_LENGTH,
    max_sequence_length: int = 0,
    shift: float = 3.0,
    guidance_scale: float = 4.0,
    num_inference_steps: int = 10,
) -> ShapeWorldModel:
    """Build a freshly initialised ShapeWorld pipeline around a trained autoencoder (eval mode, float32).

    Args:
        vae (`AutoencoderKL`, *optional*): the trained ShapeWorld autoencoder (its config carries the shift and
            scaling factors); None = an untrained `build_vae()` with 16 channels a block (tests).
        patch_size (`int`, defaults to 2): transformer patch side; tokens = (latent side / patch_size) ** 2.
        num_layers (`int`, defaults to 6): joint transformer blocks.
        num_attention_heads (`int`, defaults to 4) and attention_head_dim (`int`, defaults to 32): width = product.
        text_hidden_size (`int`, defaults to 64), text_layers (`int`, defaults to 2), text_heads (`int`, defaults
            to 4): each CLIP text encoder; the joint-attention width is 2 * text_hidden_size (both concatenated).
        max_length (`int`, defaults to 12): tokenizer padding length.
        max_sequence_length (`int`, defaults to 0): zero "T5" tokens the pipeline appends (T5 is absent).
        shift (`float`, defaults to 3.0), guidance_scale (`float`, defaults to 4.0), num_inference_steps (`int`,
            defaults to 10): sampling defaults stored in the metadata and the scheduler.

    Returns:
        `ShapeWorldModel`.
    """
    if vae is None:
        vae = build_vae(block_out_channels=(16, 16, 16))
    latent_side = int(vae.config.sample_size) // 2 ** (len(vae.config.block_out_channels) - 1)
    if latent_side % patch_size != 0:
        raise ValueError(f"latent side {latent_side} must be divisible by patch_size {patch_size}; try 1 or 2.")
    tokenizer = build_tokenizer(max_length=max_length)
    encoders = [
        _clip(tokenizer, hidden=text_hidden_size, layers=text_layers, heads=text_heads, max_length=max_length)
        for _ in range(2)
    ]
    joint = 2 * text_hidden_size
    transformer = SD3Transformer2DModel(
        sample_size=latent_side,
        patch_size=patch_size,
        in_channels=int(vae.config.latent_channels),
        out_channels=int(vae.config.latent_channels),
        num_layers=num_layers,
        attention_head_dim=attention_head_dim,
        num_attention_heads=num_attention_heads,
        joint_attention_dim=joint,
        caption_projection_dim=num_attention_heads * attention_head_dim,
        pooled_projection_dim=joint,
        pos_embed_max_size=latent_side // patch_size,
        qk_norm="rms_norm",
    )
    pipe = pipeline_class("StableDiffusion3Pipeline")(
        transformer=transformer.eval(),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=shift),
        vae=vae.eval(),
        text_encoder=encoders[0].eval(),
        tokenizer=tokenizer,
        text_encoder_2=encoders[1].eval(),
        tokenizer_2=tokenizer,
        text_encoder_3=None,
        tokenizer_3=None,
    )
    meta = {
        "image_size": int(vae.config.sample_size),
        "latent_shape": [int(vae.config.latent_channels), latent_side, latent_side],
        "shift": shift,
        "guidance_scale": guidance_scale,
        "num_inference_steps": num_inference_steps,
        "max_length": max_length,
        "max_sequence_length": max_sequence_length,
        "flow": "x_sigma = (1 - sigma) * x0 + sigma * noise; v = noise - x0; timestep = 1000 * sigma; "
        "x0 = (vae mode - shift_factor) * scaling_factor",
    }
    return ShapeWorldModel(pipe, meta)


def save_shapeworld(model: ShapeWorldModel, folder: str | os.PathLike, *, extra_meta: dict | None = None) -> None:
    """Save a model as one pipeline folder (layout in this module's docstring), weights as safetensors.

    Args:
        model (`ShapeWorldModel`): the model to save.
        folder (`str | os.PathLike`): created if missing; existing files of the same names are overwritten.
        extra_meta (`dict`, *optional*): merged into the metadata JSON (e.g. training provenance).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.pipe.save_pretrained(folder, safe_serialization=True)
    meta = {**model.meta, **(extra_meta or {})}
    (folder / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def load_shapeworld(
    folder: str | os.PathLike, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> ShapeWorldModel:
    """Load a model saved by `save_shapeworld` (no network access), in eval mode.

    Args:
        folder (`str | os.PathLike`): the model folder, e.g. the shipped `assets/shapeworld`.
        device (`str | torch.device`, defaults to "cpu"): where to put the weights.
        dtype (`torch.dtype`, defaults to float32): weight dtype.

    Returns:
        `ShapeWorldModel`.
    """
    folder = Path(folder)
    missing = [name for name in ("model_index.json", META_FILE) if not (folder / name).is_file()]
    if missing:
        legacy = (folder / "transformer").is_dir() and not (folder / "vae").is_dir()
        hint = (
            " It looks like a ShapeWorld v1 (pixel-space) folder, which flowrl no longer loads; use the shipped "
            "assets/shapeworld or retrain with scripts/pretrain_shapes.py."
            if legacy
            else ""
        )
        raise FileNotFoundError(
            f"{folder} is not a ShapeWorld model folder: missing {missing}. Expected a StableDiffusion3Pipeline "
            f"folder plus {META_FILE}, as written by flowrl.shapes.save_shapeworld or scripts/pretrain_shapes.py."
            + hint
        )
    pipe = pipeline_class("StableDiffusion3Pipeline").from_pretrained(
        folder, dtype=dtype, local_files_only=True, text_encoder_3=None, tokenizer_3=None
    )
    meta = json.loads((folder / META_FILE).read_text())
    return ShapeWorldModel(pipe.to(device), meta)


def encode_prompts(model: ShapeWorldModel, prompts: list[str]) -> PromptEmbeds:
    """Check the words, then encode exactly as the pipeline does (`StableDiffusion3Pipeline.encode_prompt`).

    Gradients flow into the text encoders (pretraining trains them); wrap in `torch.no_grad()` to cache.

    Args:
        model (`ShapeWorldModel`): the model.
        prompts (`list[str]`): B prompts made of ShapeWorld words (unknown words raise a ValueError naming them).

    Returns:
        `PromptEmbeds`: embeds (B, max_length + max_sequence_length, D_joint), pooled (B, P).
    """
    if isinstance(prompts, str):
        raise TypeError(f"prompts must be a list of str, got the single str {prompts!r}; wrap it in a list.")
    check_words(prompts)
    embeds, _, pooled, _ = model.pipe.encode_prompt(
        prompt=list(prompts),
        prompt_2=None,
        prompt_3=None,
        device=model.transformer.device,
        do_classifier_free_guidance=False,
        max_sequence_length=int(model.meta["max_sequence_length"]),
    )
    return PromptEmbeds(embeds=embeds, pooled=pooled)  # (B, L, D), (B, P)


def velocity(
    model: ShapeWorldModel,
    x: torch.Tensor,
    sigma: torch.Tensor | float,
    cond: PromptEmbeds,
    *,
    guidance_scale: float = 1.0,
    uncond: PromptEmbeds | None = None,
) -> torch.Tensor:
    """Velocity v(x, sigma, cond) = noise - x0 prediction, with classifier-free guidance.

    With guidance_scale g != 1 the conditional and unconditional inputs are concatenated into ONE forward pass and
    v = v_uncond + g * (v_cond - v_uncond).

    Args:
        model (`ShapeWorldModel`): the model.
        x (`torch.Tensor`): (B, C, h, w) noisy normalised latents.
        sigma (`torch.Tensor | float`): noise level in [0, 1], a scalar or (B,).
        cond (`PromptEmbeds`): conditional embeddings of batch B.
        guidance_scale (`float`, defaults to 1.0): CFG scale; 1.0 runs the conditional branch only.
        uncond (`PromptEmbeds`, *optional*): unconditional embeddings of batch B or 1; defaults to encoding "".

    Returns:
        `torch.Tensor`: float32 (B, C, h, w) velocity.
    """
    batch = x.shape[0]
    if cond.embeds.shape[0] != batch:
        raise ValueError(
            f"cond has batch {cond.embeds.shape[0]} but x has batch {batch}; encode one prompt per image."
        )
    dtype = model.transformer.dtype
    sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).expand(batch)  # (B,)
    if guidance_scale == 1.0:
        embeds, pooled, hidden, timestep = cond.embeds, cond.pooled, x, 1000.0 * sigma
    else:
        uncond = encode_prompts(model, [""]) if uncond is None else uncond
        embeds, pooled = cfg_rows(uncond, cond)  # (2B, L, D), (2B, P)
        hidden, timestep = torch.cat([x, x]), torch.cat([1000.0 * sigma, 1000.0 * sigma])  # (2B, C, h, w), (2B,)
    out = model.transformer(
        hidden_states=hidden.to(dtype),
        encoder_hidden_states=embeds.to(dtype),
        pooled_projections=pooled.to(dtype),
        timestep=timestep.to(dtype),
    ).sample.float()  # fp32 for the guidance combination and the ODE step
    return out if guidance_scale == 1.0 else guide(out, guidance_scale)  # (B, C, h, w)


@torch.no_grad()
def encode_images(model: ShapeWorldModel, images: torch.Tensor) -> torch.Tensor:
    """Images (B, 3, H, W) in [0, 1] -> normalised latents (B, C, h, w): (posterior mode - shift) * scale."""
    vae = model.vae
    mode = vae.encode(images.to(vae.device, vae.dtype) * 2.0 - 1.0).latent_dist.mode()
    return ((mode.float() - vae.config.shift_factor) * vae.config.scaling_factor).float()


@torch.no_grad()
def decode_latents(model: ShapeWorldModel, latents: torch.Tensor) -> torch.Tensor:
    """Normalised latents (B, C, h, w) -> images (B, 3, H, W) float32 in [0, 1] on the CPU (the pipeline's decode)."""
    vae = model.vae
    z = latents.to(vae.device, vae.dtype) / vae.config.scaling_factor + vae.config.shift_factor
    return ((vae.decode(z).sample.float().cpu() + 1.0) / 2.0).clamp(0.0, 1.0)
