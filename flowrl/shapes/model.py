"""The ShapeWorld text-to-image flow model: build, save, load, encode prompts, velocity with CFG.

Built only from library classes so that the same adapter, LoRA targets and checkpoint code serve SD3.5:

* `diffusers.SD3Transformer2DModel` in pixel space (no VAE): in/out channels 3, images in [-1, 1].
* `transformers.CLIPTextModelWithProjection`, tiny: its `last_hidden_state` is the transformer's text sequence
  and its `text_embeds` the pooled vector.
* the word-level tokenizer of `flowrl.shapes.tokenizer`.

Flow convention (rectified flow, as SD3): x_sigma = (1 - sigma) * x0 + sigma * noise with sigma in [0, 1],
velocity v = noise - x0, and the transformer receives timestep = 1000 * sigma.

Folder layout (`save_shapeworld` / `load_shapeworld`)::

    folder/transformer/     config.json, diffusion_pytorch_model.safetensors
    folder/text_encoder/    config.json, model.safetensors
    folder/tokenizer/       tokenizer.json, tokenizer_config.json
    folder/flowrl_shapeworld.json   image_size, shift, guidance_scale, num_inference_steps, max_length, notes

Each part also loads alone, e.g. `SD3Transformer2DModel.from_pretrained(folder, subfolder="transformer")`.
"""

import json
import os
from pathlib import Path
from typing import NamedTuple

import torch
from diffusers import SD3Transformer2DModel
from transformers import CLIPTextConfig, CLIPTextModelWithProjection, PreTrainedTokenizerFast

from flowrl.shapes.tokenizer import DEFAULT_MAX_LENGTH, build_tokenizer, check_words

META_FILE = "flowrl_shapeworld.json"


class PromptEmbeds(NamedTuple):
    """Text conditioning of a batch.

    Args:
        embeds (`torch.Tensor`): (B, L, D_text) sequence for the transformer's joint attention.
        pooled (`torch.Tensor`): (B, P) pooled projection.
    """

    embeds: torch.Tensor
    pooled: torch.Tensor


class ShapeWorldModel(NamedTuple):
    """A loaded ShapeWorld model.

    Args:
        transformer (`SD3Transformer2DModel`): pixel-space velocity network.
        text_encoder (`CLIPTextModelWithProjection`): prompt encoder.
        tokenizer (`PreTrainedTokenizerFast`): word-level tokenizer.
        meta (`dict`): flowrl metadata (image_size, shift, guidance_scale, num_inference_steps, max_length, ...).
    """

    transformer: SD3Transformer2DModel
    text_encoder: CLIPTextModelWithProjection
    tokenizer: PreTrainedTokenizerFast
    meta: dict

    def encode(self, prompts: list[str]) -> PromptEmbeds:
        """Encode prompts (the empty prompt "" is the unconditional input); see `encode_prompts`."""
        return encode_prompts(self, prompts)

    def velocity(
        self, x: torch.Tensor, sigma: torch.Tensor | float, cond: PromptEmbeds, *, guidance_scale: float = 1.0
    ) -> torch.Tensor:
        """Velocity with classifier-free guidance; see `velocity`."""
        return velocity(self, x, sigma, cond, guidance_scale=guidance_scale)


def build_shapeworld(
    *,
    image_size: int = 32,
    patch_size: int = 4,
    num_layers: int = 6,
    num_attention_heads: int = 4,
    attention_head_dim: int = 32,
    text_hidden_size: int = 64,
    text_layers: int = 2,
    text_heads: int = 4,
    max_length: int = DEFAULT_MAX_LENGTH,
    shift: float = 3.0,
    guidance_scale: float = 4.0,
    num_inference_steps: int = 10,
) -> ShapeWorldModel:
    """Build a freshly initialised ShapeWorld model (eval mode, float32).

    Args:
        image_size (`int`, defaults to 32): image height and width in pixels; must be divisible by `patch_size`.
        patch_size (`int`, defaults to 4): transformer patch side; tokens = (image_size / patch_size) ** 2.
        num_layers (`int`, defaults to 6): joint transformer blocks.
        num_attention_heads (`int`, defaults to 4) and attention_head_dim (`int`, defaults to 32): width = product.
        text_hidden_size (`int`, defaults to 64), text_layers (`int`, defaults to 2), text_heads (`int`, defaults
            to 4): the CLIP text encoder; its projection (pooled vector) has `text_hidden_size` dimensions.
        max_length (`int`, defaults to 12): tokenizer padding length.
        shift (`float`, defaults to 3.0), guidance_scale (`float`, defaults to 4.0), num_inference_steps (`int`,
            defaults to 10): sampling defaults stored in the metadata.

    Returns:
        `ShapeWorldModel`.
    """
    if image_size % patch_size != 0:
        raise ValueError(f"image_size {image_size} must be divisible by patch_size {patch_size}; try patch 2 or 4.")
    tokenizer = build_tokenizer(max_length=max_length)
    text_config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=text_hidden_size,
        intermediate_size=4 * text_hidden_size,
        num_attention_heads=text_heads,
        num_hidden_layers=text_layers,
        projection_dim=text_hidden_size,
        max_position_embeddings=max_length,
        hidden_act="gelu",
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    text_encoder = CLIPTextModelWithProjection(text_config)
    transformer = SD3Transformer2DModel(
        sample_size=image_size,
        patch_size=patch_size,
        in_channels=3,
        out_channels=3,
        num_layers=num_layers,
        attention_head_dim=attention_head_dim,
        num_attention_heads=num_attention_heads,
        joint_attention_dim=text_hidden_size,
        caption_projection_dim=num_attention_heads * attention_head_dim,
        pooled_projection_dim=text_hidden_size,
        pos_embed_max_size=image_size // patch_size,
        qk_norm="rms_norm",
    )
    meta = {
        "image_size": image_size,
        "shift": shift,
        "guidance_scale": guidance_scale,
        "num_inference_steps": num_inference_steps,
        "max_length": max_length,
        "pixel_range": [-1.0, 1.0],
        "flow": "x_sigma = (1 - sigma) * x0 + sigma * noise; v = noise - x0; timestep = 1000 * sigma",
    }
    return ShapeWorldModel(transformer.eval(), text_encoder.eval(), tokenizer, meta)


def save_shapeworld(model: ShapeWorldModel, folder: str | os.PathLike, *, extra_meta: dict | None = None) -> None:
    """Save a model as one folder (layout in this module's docstring), weights as safetensors.

    Args:
        model (`ShapeWorldModel`): the model to save.
        folder (`str | os.PathLike`): created if missing; existing files of the same names are overwritten.
        extra_meta (`dict`, *optional*): merged into the metadata JSON (e.g. training provenance).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.transformer.save_pretrained(folder / "transformer", safe_serialization=True)
    model.text_encoder.save_pretrained(folder / "text_encoder", safe_serialization=True)
    model.tokenizer.save_pretrained(folder / "tokenizer")
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
    missing = [
        name for name in ("transformer", "text_encoder", "tokenizer", META_FILE) if not (folder / name).exists()
    ]
    if missing:
        raise FileNotFoundError(
            f"{folder} is not a ShapeWorld model folder: missing {missing}. Expected transformer/, text_encoder/, "
            f"tokenizer/ and {META_FILE}, as written by flowrl.shapes.save_shapeworld or scripts/pretrain_shapes.py."
        )
    transformer = SD3Transformer2DModel.from_pretrained(folder / "transformer", torch_dtype=dtype)
    text_encoder = CLIPTextModelWithProjection.from_pretrained(folder / "text_encoder", dtype=dtype)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(folder / "tokenizer")
    meta = json.loads((folder / META_FILE).read_text())
    return ShapeWorldModel(transformer.to(device).eval(), text_encoder.to(device).eval(), tokenizer, meta)


def encode_prompts(model: ShapeWorldModel, prompts: list[str]) -> PromptEmbeds:
    """Tokenize and encode prompts; "" encodes the unconditional input.

    Args:
        model (`ShapeWorldModel`): the model.
        prompts (`list[str]`): B prompts made of ShapeWorld words (unknown words raise a ValueError naming them).

    Returns:
        `PromptEmbeds`: embeds (B, max_length, D_text), pooled (B, D_text), on the text encoder's device and dtype.
    """
    if isinstance(prompts, str):
        raise TypeError(f"prompts must be a list of str, got the single str {prompts!r}; wrap it in a list.")
    check_words(prompts)
    device = model.text_encoder.device
    tokens = model.tokenizer(
        list(prompts), padding="max_length", max_length=model.meta["max_length"], truncation=True, return_tensors="pt"
    )
    out = model.text_encoder(input_ids=tokens.input_ids.to(device))
    return PromptEmbeds(embeds=out.last_hidden_state, pooled=out.text_embeds)  # (B, L, D), (B, D)


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
        x (`torch.Tensor`): (B, 3, H, W) noisy images in model space ([-1, 1] at sigma 0).
        sigma (`torch.Tensor | float`): noise level in [0, 1], a scalar or (B,).
        cond (`PromptEmbeds`): conditional embeddings of batch B.
        guidance_scale (`float`, defaults to 1.0): CFG scale; 1.0 runs the conditional branch only.
        uncond (`PromptEmbeds`, *optional*): unconditional embeddings of batch B or 1; defaults to encoding "".

    Returns:
        `torch.Tensor`: float32 (B, 3, H, W) velocity.
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
        if uncond is None:
            uncond = encode_prompts(model, [""])
        uncond_embeds = uncond.embeds.expand(batch, -1, -1)  # (B, L, D)
        uncond_pooled = uncond.pooled.expand(batch, -1)  # (B, P)
        embeds = torch.cat([uncond_embeds, cond.embeds])  # (2B, L, D)
        pooled = torch.cat([uncond_pooled, cond.pooled])  # (2B, P)
        hidden = torch.cat([x, x])  # (2B, 3, H, W)
        timestep = torch.cat([1000.0 * sigma, 1000.0 * sigma])  # (2B,)
    out = model.transformer(
        hidden_states=hidden.to(dtype),
        encoder_hidden_states=embeds.to(dtype),
        pooled_projections=pooled.to(dtype),
        timestep=timestep.to(dtype),
    ).sample.float()  # fp32 for the guidance combination and the ODE step
    if guidance_scale == 1.0:
        return out
    v_uncond, v_cond = out.chunk(2)  # (B, 3, H, W) each
    return v_uncond + guidance_scale * (v_cond - v_uncond)
