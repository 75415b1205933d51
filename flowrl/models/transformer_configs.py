"""Transformer configurations of the image models flowrl adapts, as keyword arguments of diffusers' classes.

`SD35M` and `FLUX_DEV` are the published ``transformer/config.json`` values of stabilityai/stable-diffusion-3.5-medium
and black-forest-labs/FLUX.1-dev (for random-weight benchmarks: `scripts/bench_gpu.py`). `SD3_TINY` and `FLUX_TINY`
keep their structure (SD3.5's dual attention in block 0 and RMS qk-norm; FLUX's guidance embedding and RoPE axes) at
a size that runs in seconds on a CPU: the tests' tiny pipelines (32x32 images, latents (16, 16, 16)) and
``bench_gpu.py --tiny``.
"""

from __future__ import annotations

# stabilityai/stable-diffusion-3.5-medium transformer/config.json (`diffusers.SD3Transformer2DModel`)
SD35M = dict(
    sample_size=128,
    patch_size=2,
    in_channels=16,
    num_layers=24,
    attention_head_dim=64,
    num_attention_heads=24,
    joint_attention_dim=4096,
    caption_projection_dim=1536,
    pooled_projection_dim=2048,
    out_channels=16,
    pos_embed_max_size=384,
    dual_attention_layers=tuple(range(13)),
    qk_norm="rms_norm",
)
# black-forest-labs/FLUX.1-dev transformer/config.json (`diffusers.FluxTransformer2DModel`)
FLUX_DEV = dict(
    patch_size=1,
    in_channels=64,
    num_layers=19,
    num_single_layers=38,
    attention_head_dim=128,
    num_attention_heads=24,
    joint_attention_dim=4096,
    pooled_projection_dim=768,
    guidance_embeds=True,
    axes_dims_rope=(16, 56, 56),
)
SD3_TINY = dict(
    SD35M,
    num_layers=2,
    attention_head_dim=16,
    num_attention_heads=2,
    joint_attention_dim=64,
    caption_projection_dim=32,
    pooled_projection_dim=64,
    pos_embed_max_size=32,
    sample_size=16,
    dual_attention_layers=(0,),
)
FLUX_TINY = dict(
    FLUX_DEV,
    num_layers=1,
    num_single_layers=1,
    attention_head_dim=16,
    num_attention_heads=2,
    joint_attention_dim=64,
    pooled_projection_dim=32,
    axes_dims_rope=(4, 6, 6),
)
