"""Tiny random-weight checkpoints in each original layout, and independent reference forwards, for reward tests.

Nothing here imports the code under test: the open_clip forward is written from open_clip's architecture (pre-norm
ViT / causal text transformer, ``nn.MultiheadAttention`` packed q/k/v, ``x @ proj``), and the ImageReward file is
written by inverting BLIP's names by hand.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import torch
import torch.nn.functional as F

CLIP_MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
CLIP_STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
MERGES = ["p h", "ph o", "t o</w>", "c a", "ca t</w>", "r e", "re d</w>", "o f</w>"]
VOCAB_SIZE = 256 * 2 + len(MERGES) + 2  # bytes, bytes + </w>, merges, <|startoftext|>, <|endoftext|>


def write_bpe(path: Path) -> Path:
    """A merges file in open_clip's format: a header line, then one "a b" merge per line."""
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("#version: tiny\n" + "\n".join(MERGES) + "\n")
    return path


def clip_pixels(images: torch.Tensor) -> torch.Tensor:
    """Pixels of an image already at the model's size: 8-bit rounding, then CLIP normalisation (no resize)."""
    return ((images * 255).round().clamp(0, 255) / 255 - CLIP_MEAN) / CLIP_STD


# ----- open_clip layout (HPSv2) -----------------------------------------------------------------------------------


def _block(sd, prefix, width, mlp):
    g = torch.Generator().manual_seed(len(sd))
    r = lambda *s: torch.randn(*s, generator=g) * 0.05  # noqa: E731
    sd[f"{prefix}ln_1.weight"], sd[f"{prefix}ln_1.bias"] = 1 + r(width), r(width)
    sd[f"{prefix}ln_2.weight"], sd[f"{prefix}ln_2.bias"] = 1 + r(width), r(width)
    sd[f"{prefix}attn.in_proj_weight"], sd[f"{prefix}attn.in_proj_bias"] = r(3 * width, width) * 4, r(3 * width)
    sd[f"{prefix}attn.out_proj.weight"], sd[f"{prefix}attn.out_proj.bias"] = r(width, width) * 4, r(width)
    sd[f"{prefix}mlp.c_fc.weight"], sd[f"{prefix}mlp.c_fc.bias"] = r(mlp, width) * 4, r(mlp)
    sd[f"{prefix}mlp.c_proj.weight"], sd[f"{prefix}mlp.c_proj.bias"] = r(width, mlp) * 4, r(width)


def openclip_state_dict(*, embed=16, width=32, layers=2, patch=8, image=32, context=77, seed=0) -> dict:
    """A random open_clip ``CLIP`` state dict (ViT image tower, causal text tower), keys as open_clip 3.x."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g) * 0.05  # noqa: E731
    grid = image // patch
    sd = {
        "logit_scale": torch.tensor(4.6052),
        "positional_embedding": r(context, width),
        "text_projection": r(width, embed) * 4,
        "token_embedding.weight": r(VOCAB_SIZE, width) * 4,
        "ln_final.weight": 1 + r(width),
        "ln_final.bias": r(width),
        "visual.class_embedding": r(width),
        "visual.positional_embedding": r(grid * grid + 1, width),
        "visual.proj": r(width, embed) * 4,
        "visual.conv1.weight": r(width, 3, patch, patch) * 4,
        "visual.ln_pre.weight": 1 + r(width),
        "visual.ln_pre.bias": r(width),
        "visual.ln_post.weight": 1 + r(width),
        "visual.ln_post.bias": r(width),
    }
    for i in range(layers):
        _block(sd, f"transformer.resblocks.{i}.", width, 4 * width)
        _block(sd, f"visual.transformer.resblocks.{i}.", width, 4 * width)
    return sd


def _attention(x, sd, prefix, heads, mask):
    b, n, d = x.shape
    q, k, v = F.linear(x, sd[prefix + "in_proj_weight"], sd[prefix + "in_proj_bias"]).chunk(3, dim=-1)
    split = lambda t: t.view(b, n, heads, d // heads).transpose(1, 2)  # noqa: E731
    att = split(q) @ split(k).transpose(-1, -2) / (d // heads) ** 0.5 + mask  # (B, h, N, N)
    out = (att.softmax(-1) @ split(v)).transpose(1, 2).reshape(b, n, d)
    return F.linear(out, sd[prefix + "out_proj.weight"], sd[prefix + "out_proj.bias"])


def _ln(x, sd, name):
    return F.layer_norm(x, x.shape[-1:], sd[name + ".weight"], sd[name + ".bias"])


def _tower(x, sd, prefix, heads, mask):
    i = 0
    while f"{prefix}resblocks.{i}.ln_1.weight" in sd:
        p = f"{prefix}resblocks.{i}."
        x = x + _attention(_ln(x, sd, p + "ln_1"), sd, p + "attn.", heads, mask)
        h = F.gelu(F.linear(_ln(x, sd, p + "ln_2"), sd[p + "mlp.c_fc.weight"], sd[p + "mlp.c_fc.bias"]))
        x = x + F.linear(h, sd[p + "mlp.c_proj.weight"], sd[p + "mlp.c_proj.bias"])
        i += 1
    return x


def openclip_features(sd, pixels, ids, *, heads=4) -> tuple[torch.Tensor, torch.Tensor]:
    """open_clip's ``encode_image`` / ``encode_text`` (unnormalised) written from its architecture."""
    w = sd["visual.conv1.weight"]
    x = F.conv2d(pixels, w, stride=w.shape[-1]).flatten(2).transpose(1, 2)  # (B, N, D)
    cls = sd["visual.class_embedding"].expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1) + sd["visual.positional_embedding"]
    x = F.layer_norm(x, x.shape[-1:], sd["visual.ln_pre.weight"], sd["visual.ln_pre.bias"])
    x = _tower(x, sd, "visual.transformer.", heads, torch.zeros(()))
    pooled = F.layer_norm(x[:, 0], x.shape[-1:], sd["visual.ln_post.weight"], sd["visual.ln_post.bias"])
    image = pooled @ sd["visual.proj"]
    t = sd["token_embedding.weight"][ids] + sd["positional_embedding"][: ids.shape[1]]
    n = ids.shape[1]
    causal = torch.full((n, n), float("-inf")).triu(1)
    t = _tower(t, sd, "transformer.", heads, causal)
    t = F.layer_norm(t, t.shape[-1:], sd["ln_final.weight"], sd["ln_final.bias"])
    text = t[torch.arange(ids.shape[0]), ids.argmax(-1)] @ sd["text_projection"]
    return image, text


# ----- transformers CLIP folder (PickScore, CLIPScore, aesthetic) --------------------------------------------------


def clip_folder(folder: Path, *, bpe: Path, image=32, seed=0) -> Path:
    """A random tiny `CLIPModel` saved with `save_pretrained`, plus a CLIP tokenizer built from `bpe`."""
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    torch.manual_seed(seed)
    config = CLIPConfig(
        projection_dim=16,
        text_config=dict(
            vocab_size=VOCAB_SIZE, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=77, hidden_act="gelu", bos_token_id=VOCAB_SIZE - 2, eos_token_id=VOCAB_SIZE - 1,
            pad_token_id=VOCAB_SIZE - 1,
        ),
        vision_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, patch_size=8,
            image_size=image, hidden_act="gelu",
        ),
    )  # fmt: skip
    CLIPModel(config).eval().save_pretrained(folder)
    symbols = list(bytes_to_unicode().values())
    merges = [tuple(m.split()) for m in MERGES]
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    CLIPTokenizer(vocab={t: i for i, t in enumerate(vocab)}, merges=merges).save_pretrained(folder)
    return folder


def laion_mlp(path: Path, *, dim=16, seed=0) -> dict:
    """A random LAION aesthetic MLP (``layers.{0,2,4,6,7}``) saved with `torch.save`; returns the state dict."""
    g = torch.Generator().manual_seed(seed)
    sizes = [(0, dim, 1024), (2, 1024, 128), (4, 128, 64), (6, 64, 16), (7, 16, 1)]
    sd = {}
    for i, n_in, n_out in sizes:
        sd[f"layers.{i}.weight"] = torch.randn(n_out, n_in, generator=g) / n_in**0.5
        sd[f"layers.{i}.bias"] = torch.randn(n_out, generator=g) * 0.1
    torch.save(sd, path)
    return sd


# ----- ImageReward layout -----------------------------------------------------------------------------------------

BERT_WORDS = ["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "photo", "of", "cat", "red", "circle"]


def write_vocab(path: Path) -> Path:
    path.write_text("\n".join(BERT_WORDS) + "\n", encoding="utf-8")
    return path


def _blip_vision_to_timm(key: str) -> str:
    """`BlipVisionModel` key -> BLIP's timm ViT key (the inverse of the loader's map, written independently)."""
    fixed = {
        "embeddings.class_embedding": "cls_token",
        "embeddings.position_embedding": "pos_embed",
        "post_layernorm.weight": "norm.weight",
        "post_layernorm.bias": "norm.bias",
        "embeddings.patch_embedding.weight": "patch_embed.proj.weight",
        "embeddings.patch_embedding.bias": "patch_embed.proj.bias",
    }
    if key in fixed:
        return fixed[key]
    layer, rest = key.removeprefix("encoder.layers.").split(".", 1)
    rest = {
        "layer_norm1.weight": "norm1.weight", "layer_norm1.bias": "norm1.bias",
        "layer_norm2.weight": "norm2.weight", "layer_norm2.bias": "norm2.bias",
        "self_attn.qkv.weight": "attn.qkv.weight", "self_attn.qkv.bias": "attn.qkv.bias",
        "self_attn.projection.weight": "attn.proj.weight", "self_attn.projection.bias": "attn.proj.bias",
    }.get(rest, rest)  # fmt: skip
    return f"blocks.{layer}.{rest}"


def imagereward_checkpoint(path: Path, *, image=32, seed=0):
    """Random tiny BLIP vision + text models and MLP head saved in ``ImageReward.pt``'s flat layout.

    Returns:
        `(vision, text, mlp)`: the transformers modules and an `nn.Sequential` head, in eval mode.
    """
    from transformers import BlipTextConfig, BlipTextModel, BlipVisionConfig, BlipVisionModel

    torch.manual_seed(seed)
    vision = BlipVisionModel(
        BlipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         image_size=image, patch_size=8, layer_norm_eps=1e-6, hidden_act="gelu")
    ).eval()  # fmt: skip
    text = BlipTextModel(
        BlipTextConfig(vocab_size=len(BERT_WORDS) + 2, hidden_size=24, encoder_hidden_size=32, intermediate_size=48,
                       num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=40, layer_norm_eps=1e-12,
                       hidden_act="gelu"),
        add_pooling_layer=False,
    ).eval()  # fmt: skip
    with torch.no_grad():  # BLIP's initialisation (std 0.02, zero pos / cls embeddings) hides the image: rescale
        for param in [*vision.parameters(), *text.parameters()]:
            if param.ndim >= 2:
                param.normal_(0, param.shape[-1] ** -0.5)
    mlp = torch.nn.Sequential(
        torch.nn.Linear(24, 32), torch.nn.Dropout(0.2), torch.nn.Linear(32, 16), torch.nn.Dropout(0.2),
        torch.nn.Linear(16, 8), torch.nn.Dropout(0.1), torch.nn.Linear(8, 4), torch.nn.Linear(4, 1),
    ).eval()  # fmt: skip
    sd = {f"blip.visual_encoder.{_blip_vision_to_timm(k)}": v for k, v in vision.state_dict().items()}
    sd.update({f"blip.text_encoder.{k}": v for k, v in text.state_dict().items()})
    sd["blip.text_encoder.embeddings.position_ids"] = torch.arange(40).view(1, -1)  # stored by the original
    sd.update({f"mlp.layers.{k}": v for k, v in mlp.state_dict().items()})
    torch.save(sd, path)
    return vision, text, mlp


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path
