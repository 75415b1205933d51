"""open_clip CLIP state dicts (HPSv2's ``{"state_dict": ...}`` layout) mapped onto `transformers.CLIPModel`.

The map is one-to-one except attention: open_clip's ``attn.in_proj_weight`` `(3D, D)` stacks q, k, v, which
`CLIPModel` keeps as three `(D, D)` projections; the projections ``text_projection`` `(D_text, E)` and
``visual.proj`` `(D_vis, E)` are right-multiplied in open_clip, so they are transposed into ``nn.Linear`` weights.
Checked against open_clip on ViT-H-14 to 1.5e-7 (docs/rewards.md, Parity with the original implementations).
"""

from __future__ import annotations

import math

import torch

_LAYER = (
    ("ln_1", "layer_norm1"),
    ("ln_2", "layer_norm2"),
    ("mlp.c_fc", "mlp.fc1"),
    ("mlp.c_proj", "mlp.fc2"),
    ("attn.out_proj", "self_attn.out_proj"),
)
IGNORED = ("attn_mask",)


def _num_layers(sd: dict[str, torch.Tensor], prefix: str) -> int:
    n = 0
    while f"{prefix}.resblocks.{n}.ln_1.weight" in sd:
        n += 1
    return n


def openclip_to_hf(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename (and split / transpose) an open_clip state dict into `CLIPModel` keys.

    Args:
        sd (`dict[str, torch.Tensor]`): open_clip keys (``visual.conv1.weight``, ``transformer.resblocks.0...``).

    Returns:
        `dict[str, torch.Tensor]`: `CLIPModel` keys; raises `KeyError` naming keys that were not used.
    """
    out = {
        "logit_scale": sd["logit_scale"],
        "text_projection.weight": sd["text_projection"].T.contiguous(),
        "visual_projection.weight": sd["visual.proj"].T.contiguous(),
        "text_model.embeddings.token_embedding.weight": sd["token_embedding.weight"],
        "text_model.embeddings.position_embedding.weight": sd["positional_embedding"],
        "text_model.final_layer_norm.weight": sd["ln_final.weight"],
        "text_model.final_layer_norm.bias": sd["ln_final.bias"],
        "vision_model.embeddings.class_embedding": sd["visual.class_embedding"],
        "vision_model.embeddings.patch_embedding.weight": sd["visual.conv1.weight"],
        "vision_model.embeddings.position_embedding.weight": sd["visual.positional_embedding"],
        "vision_model.pre_layrnorm.weight": sd["visual.ln_pre.weight"],
        "vision_model.pre_layrnorm.bias": sd["visual.ln_pre.bias"],
        "vision_model.post_layernorm.weight": sd["visual.ln_post.weight"],
        "vision_model.post_layernorm.bias": sd["visual.ln_post.bias"],
    }
    used = {
        "logit_scale", "text_projection", "visual.proj", "token_embedding.weight", "positional_embedding",
        "ln_final.weight", "ln_final.bias", "visual.class_embedding", "visual.conv1.weight",
        "visual.positional_embedding", "visual.ln_pre.weight", "visual.ln_pre.bias", "visual.ln_post.weight",
        "visual.ln_post.bias",
    }  # fmt: skip
    for src, dst in (("transformer", "text_model"), ("visual.transformer", "vision_model")):
        for i in range(_num_layers(sd, src)):
            s, d = f"{src}.resblocks.{i}.", f"{dst}.encoder.layers.{i}."
            for a, b in _LAYER:
                for p in ("weight", "bias"):
                    out[f"{d}{b}.{p}"] = sd[f"{s}{a}.{p}"]
                    used.add(f"{s}{a}.{p}")
            q, k, v = sd[s + "attn.in_proj_weight"].chunk(3)  # 3 x (D, D)
            qb, kb, vb = sd[s + "attn.in_proj_bias"].chunk(3)  # 3 x (D,)
            for n, w, bias in (("q", q, qb), ("k", k, kb), ("v", v, vb)):
                out[f"{d}self_attn.{n}_proj.weight"], out[f"{d}self_attn.{n}_proj.bias"] = w, bias
            used.update({s + "attn.in_proj_weight", s + "attn.in_proj_bias"})
    unused = sorted(k for k in sd if k not in used and k.rsplit(".", 1)[-1] not in IGNORED)
    if unused:
        raise KeyError(
            f"open_clip state dict has keys this map does not know: {unused[:8]}{' ...' if len(unused) > 8 else ''}. "
            "Only plain ViT CLIP towers (open_clip `CLIP`, e.g. ViT-H-14 as HPSv2 uses) are supported."
        )
    return out


def openclip_config(sd: dict[str, torch.Tensor], *, vision_heads: int, text_heads: int):
    """A `CLIPConfig` with the sizes read off an open_clip state dict (heads cannot be read off; pass them).

    Args:
        sd (`dict[str, torch.Tensor]`): open_clip keys.
        vision_heads (`int`): attention heads of the image tower (ViT-H-14: 16).
        text_heads (`int`): attention heads of the text tower (ViT-H-14: 16).

    Returns:
        `transformers.CLIPConfig` with GELU (open_clip's default, not QuickGELU) and LayerNorm eps 1e-5.
    """
    from transformers import CLIPConfig

    vocab, text_width = sd["token_embedding.weight"].shape
    vision_width, _, patch, _ = sd["visual.conv1.weight"].shape  # (D_vis, 3, P, P)
    grid = math.isqrt(sd["visual.positional_embedding"].shape[0] - 1)
    return CLIPConfig(
        projection_dim=sd["text_projection"].shape[1],
        text_config=dict(
            vocab_size=vocab,
            hidden_size=text_width,
            intermediate_size=sd["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
            num_hidden_layers=_num_layers(sd, "transformer"),
            num_attention_heads=text_heads,
            max_position_embeddings=sd["positional_embedding"].shape[0],
            hidden_act="gelu",
            layer_norm_eps=1e-5,
            bos_token_id=vocab - 2,
            eos_token_id=vocab - 1,  # pooled at the first <|endoftext|>, as open_clip's argmax over ids
            pad_token_id=vocab - 1,
        ),
        vision_config=dict(
            hidden_size=vision_width,
            intermediate_size=sd["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
            num_hidden_layers=_num_layers(sd, "visual.transformer"),
            num_attention_heads=vision_heads,
            patch_size=patch,
            image_size=grid * patch,
            hidden_act="gelu",
            layer_norm_eps=1e-5,
        ),
    )


def load_openclip_as_hf(sd: dict[str, torch.Tensor], *, vision_heads: int, text_heads: int):
    """`CLIPModel` (eval, float32) holding the weights of an open_clip state dict; every key must match."""
    from transformers import CLIPModel

    model = CLIPModel(openclip_config(sd, vision_heads=vision_heads, text_heads=text_heads))
    model.load_state_dict(openclip_to_hf(sd), strict=True)
    return model.float().eval().requires_grad_(False)
