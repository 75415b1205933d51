"""Tiny random SD3 and FLUX pipelines built in-process, saved with
`save_pretrained`: no weights are downloaded. Tokenizers are trained on a toy corpus (ids differ between runs, so
no test hard-codes them)."""

from __future__ import annotations

from pathlib import Path

import torch

from flowrl.models.transformer_configs import FLUX_TINY, SD3_TINY

CORPUS = ["a photo of a cat", "a painting of a dog on the moon", "a red car in the rain", "two blue squares"] * 50
PROMPTS = ["a photo of a cat", "a red car in the rain"]


def tiny_run_overrides(folder: Path, tmp_path: Path) -> list[str]:
    """`flowrl train` overrides that fit a preset to a tiny pipeline at 32 px: `PROMPTS` (written to
    ``tmp_path/prompts.txt``) for training and evaluation, 3 denoising steps, the toy brightness reward, runs under
    `tmp_path`. A test adds what it varies."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    return [
        f"model.path={folder}",
        "model.resolution=32",
        "eval.resolution=32",
        "model.mixed_precision='no'",  # quoted: YAML reads a bare no as False
        "method.kwargs.num_inference_steps=3",
        f"train.prompts_file={prompts}",
        f"eval.prompts_file={prompts}",
        "eval.num_inference_steps=2",
        "reward.names=[toy_image_rewards:brightness]",
        "run.tensorboard=false",
        f"run.root={tmp_path}",
    ]


T5_TOKENS = 16  # max_sequence_length used with these pipelines


def _tokenizers():
    from transformers import CLIPTokenizer, T5TokenizerFast

    clip_tok = CLIPTokenizer().train_new_from_iterator(CORPUS, vocab_size=300)
    clip_tok.model_max_length = 77
    t5_tok = T5TokenizerFast().train_new_from_iterator(CORPUS, vocab_size=300)
    t5_tok.model_max_length = 256
    return clip_tok, t5_tok


def _clip_config(tok, *, hidden: int = 32):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        projection_dim=32,
        max_position_embeddings=77,
        hidden_act="gelu",
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )


def _t5(tok):
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(
        T5Config(
            vocab_size=len(tok),
            d_model=64,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            decoder_start_token_id=0,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
    )


def _vae(*, shift: float, scale: float):
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=16,
        norm_num_groups=4,
        sample_size=32,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=shift,
        scaling_factor=scale,
    )  # vae_scale_factor 2


def build_sd3(folder: Path) -> Path:
    """SD3.5-style tiny pipeline (dual attention in block 0, RMS qk-norm): 32x32 images, latents (16, 16, 16)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection

    torch.manual_seed(0)
    clip_tok, t5_tok = _tokenizers()
    te1, te2 = CLIPTextModelWithProjection(_clip_config(clip_tok)), CLIPTextModelWithProjection(_clip_config(clip_tok))
    transformer = SD3Transformer2DModel(**SD3_TINY)
    components = dict(
        transformer=transformer,
        vae=_vae(shift=0.0609, scale=1.5305),
        text_encoder=te1,
        text_encoder_2=te2,
        text_encoder_3=_t5(t5_tok),
    )
    for m in components.values():
        m.eval()  # fresh modules are in train mode (T5 dropout)
    pipe = StableDiffusion3Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        tokenizer=clip_tok,
        tokenizer_2=clip_tok,
        tokenizer_3=t5_tok,
        **components,
    )
    pipe.save_pretrained(folder)
    return folder


def build_flux(folder: Path) -> Path:
    """FLUX.1-dev-style tiny pipeline (guidance embedding, dynamic shift): 32x32 images, latents (16, 16, 16)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel

    torch.manual_seed(0)
    clip_tok, t5_tok = _tokenizers()
    transformer = FluxTransformer2DModel(**FLUX_TINY)
    components = dict(
        transformer=transformer,
        vae=_vae(shift=0.1159, scale=0.3611),
        text_encoder=CLIPTextModel(_clip_config(clip_tok)),
        text_encoder_2=_t5(t5_tok),
    )
    for m in components.values():
        m.eval()
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=3.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )
    pipe = FluxPipeline(scheduler=scheduler, tokenizer=clip_tok, tokenizer_2=t5_tok, **components)
    pipe.save_pretrained(folder)
    return folder
