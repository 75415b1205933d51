"""ImageReward's checkpoint (``ImageReward.pt``) mapped onto `BlipVisionModel` + `BlipTextModel` + an MLP head.

``ImageReward.pt`` is a flat state dict: ``blip.visual_encoder.*`` (BLIP's timm-style ViT-L/16),
``blip.text_encoder.*`` (BLIP's BERT with cross-attention, already in transformers' names) and
``mlp.layers.{0,2,4,6,7}.*`` (five Linear layers with dropouts between them). Checked against
the original to exactly 0 (docs/rewards.md, Parity).
"""

from __future__ import annotations

import math
import re

import torch

_VISION_RENAMES = {
    "cls_token": "embeddings.class_embedding",
    "pos_embed": "embeddings.position_embedding",
    "norm.weight": "post_layernorm.weight",
    "norm.bias": "post_layernorm.bias",
}
_IGNORED_TEXT = ("embeddings.position_ids",)


def vision_key(key: str) -> str:
    """BLIP ViT key (without the ``blip.visual_encoder.`` prefix) -> `BlipVisionModel` key.

    Example:
        >>> vision_key("blocks.3.attn.qkv.weight"), vision_key("patch_embed.proj.bias"), vision_key("cls_token")
        ('encoder.layers.3.self_attn.qkv.weight', 'embeddings.patch_embedding.bias', 'embeddings.class_embedding')
    """
    key = _VISION_RENAMES.get(key, key)
    key = key.replace("patch_embed.proj", "embeddings.patch_embedding")
    key = re.sub(r"^blocks\.(\d+)\.", r"encoder.layers.\1.", key)
    return (
        key.replace(".norm1", ".layer_norm1")
        .replace(".norm2", ".layer_norm2")
        .replace(".attn.qkv", ".self_attn.qkv")
        .replace(".attn.proj", ".self_attn.projection")
    )


def split_imagereward(sd: dict[str, torch.Tensor]) -> tuple[dict, dict, dict]:
    """Split an ImageReward state dict into `(vision, text, mlp)` dicts in transformers / `nn.Sequential` keys."""
    vision, text, mlp, unknown = {}, {}, {}, []
    for key, value in sd.items():
        if key.startswith("blip.visual_encoder."):
            vision[vision_key(key.removeprefix("blip.visual_encoder."))] = value
        elif key.startswith("blip.text_encoder."):
            name = key.removeprefix("blip.text_encoder.")
            if name not in _IGNORED_TEXT:
                text[name] = value
        elif key.startswith("mlp.layers."):
            mlp[key.removeprefix("mlp.layers.")] = value
        else:
            unknown.append(key)
    if unknown or not vision or not text or not mlp:
        raise KeyError(
            "Not an ImageReward checkpoint: expected keys under blip.visual_encoder., blip.text_encoder. and "
            f"mlp.layers.; unknown keys {unknown[:8]}, found {len(vision)} vision / {len(text)} text / "
            f"{len(mlp)} mlp keys. Pass the official ImageReward.pt (THUDM/ImageReward)."
        )
    return vision, text, mlp


def _count(sd: dict[str, torch.Tensor], pattern: str) -> int:
    return len({m.group(1) for k in sd if (m := re.match(pattern, k))})


def blip_configs(vision: dict, text: dict, *, vision_heads: int, text_heads: int):
    """`(BlipVisionConfig, BlipTextConfig)` with the sizes read off the mapped state dicts.

    Args:
        vision, text (`dict`): outputs of `split_imagereward`.
        vision_heads (`int`): ViT heads (ImageReward's ViT-L/16: 16).
        text_heads (`int`): BERT heads (BERT-base: 12).
    """
    from transformers import BlipTextConfig, BlipVisionConfig

    width = vision["embeddings.class_embedding"].shape[-1]
    patch = vision["embeddings.patch_embedding.weight"].shape[-1]
    grid = math.isqrt(vision["embeddings.position_embedding"].shape[1] - 1)
    vision_config = BlipVisionConfig(
        hidden_size=width,
        intermediate_size=vision["encoder.layers.0.mlp.fc1.weight"].shape[0],
        num_hidden_layers=_count(vision, r"encoder\.layers\.(\d+)\."),
        num_attention_heads=vision_heads,
        image_size=grid * patch,
        patch_size=patch,
        layer_norm_eps=1e-6,
        hidden_act="gelu",
    )
    vocab, hidden = text["embeddings.word_embeddings.weight"].shape
    text_config = BlipTextConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        encoder_hidden_size=text["encoder.layer.0.crossattention.self.key.weight"].shape[1],
        intermediate_size=text["encoder.layer.0.intermediate.dense.weight"].shape[0],
        num_hidden_layers=_count(text, r"encoder\.layer\.(\d+)\."),
        num_attention_heads=text_heads,
        max_position_embeddings=text["embeddings.position_embeddings.weight"].shape[0],
        layer_norm_eps=1e-12,
        hidden_act="gelu",
    )
    return vision_config, text_config
