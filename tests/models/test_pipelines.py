"""The adapters against plain diffusers pipelines: an Euler ODE rollout through `flowrl.flow` reproduces the
pipeline's own sampling loop (CFG batching, timestep convention, FLUX packing / RoPE ids / guidance embedding /
dynamic shift), and the LoRA saved after a GRPO step loads with `load_lora_weights` and changes the output.

Run: OMP_NUM_THREADS=1 pytest tests/models/test_pipelines.py -q
"""

from __future__ import annotations

import torch
from adapter_checks import grpo_step, load
from tiny_pipelines import PROMPTS, T5_TOKENS

from flowrl.flow.grid import time_grid
from flowrl.flow.plan import RolloutPlan, StepSpec
from flowrl.flow.tree import rollout
from flowrl.models.flux import image_ids, pack_latents, unpack_latents

T = 3


def _ode(adapter, noise, grid=None):
    grid = time_grid(T, shift=adapter.default_shift) if grid is None else grid
    plan = RolloutPlan(grid, tuple(StepSpec() for _ in range(T)))
    with torch.no_grad():
        tree = rollout(adapter.velocity, plan, adapter.encode(PROMPTS), noise[:, None])  # one root per prompt
    return tree.x[tree.leaves]  # (P, 16, h, w) in prompt order


def _pipeline_latents(pipe, latents, *, guidance_scale):
    """The pipeline's own T-step sampling of PROMPTS at 32x32 from `latents`, as latents."""
    return pipe(
        PROMPTS,
        num_inference_steps=T,
        guidance_scale=guidance_scale,
        height=32,
        width=32,
        latents=latents,
        output_type="latent",
        max_sequence_length=T5_TOKENS,
    ).images


def test_sd3_ode_rollout_matches_the_pipeline(sd3_folder):
    from diffusers import StableDiffusion3Pipeline

    a = load("sd3", sd3_folder, guidance_scale=4.5)
    noise = torch.randn(2, *a.latent_shape)
    pipe = StableDiffusion3Pipeline.from_pretrained(sd3_folder, dtype=torch.float32)
    # the pipeline's own grid (no `sigmas` passed): shift(linspace(1, sigma_min, T)) + 0 = the adapter's time_grid
    theirs = _pipeline_latents(pipe, noise.clone(), guidance_scale=4.5)
    torch.testing.assert_close(_ode(a, noise, a.time_grid(T)), theirs, atol=1e-4, rtol=1e-4)


def test_flux_packing_matches_diffusers():
    from diffusers import FluxPipeline

    x = torch.randn(2, 16, 6, 10)
    packed = pack_latents(x)
    torch.testing.assert_close(packed, FluxPipeline._pack_latents(x, 2, 16, 6, 10), atol=0, rtol=0)
    torch.testing.assert_close(unpack_latents(packed, height=6, width=10), x, atol=0, rtol=0)
    ids = FluxPipeline._prepare_latent_image_ids(2, 3, 5, "cpu", torch.float32)
    torch.testing.assert_close(image_ids(6, 10), ids, atol=0, rtol=0)


def test_flux_shift_is_the_dynamic_shift(flux_folder):
    import math

    from diffusers.pipelines.flux.pipeline_flux import calculate_shift

    a = load("flux", flux_folder)
    a.set_resolution(height=64, width=64)  # latents 32x32 -> 256 packed tokens -> mu = base_shift = 0.5
    assert a.image_seq_len == 256
    assert math.isclose(a.default_shift, math.exp(0.5), rel_tol=1e-12)
    a.set_resolution(height=32, width=32)  # 64 tokens
    assert math.isclose(a.mu, calculate_shift(64, 256, 4096, 0.5, 1.15), rel_tol=1e-12)


def test_flux_ode_rollout_matches_the_pipeline(flux_folder):
    from diffusers import FluxPipeline

    a = load("flux", flux_folder, embedded_guidance=3.5)
    noise = torch.randn(2, *a.latent_shape)
    pipe = FluxPipeline.from_pretrained(flux_folder, dtype=torch.float32)
    # the pipeline's default sigmas linspace(1, 1/T, T) are linspace(1, 0, T + 1) without the 0, shifted by e^mu
    theirs = _pipeline_latents(pipe, pack_latents(noise), guidance_scale=3.5)
    torch.testing.assert_close(_ode(a, noise), unpack_latents(theirs, height=16, width=16), atol=1e-4, rtol=1e-4)


def _lora_round_trip(kind, folder, tmp_path, pipeline_cls, forward):
    a = load(kind, folder, lora_rank=4, lora_alpha=8.0)  # scale 2: must survive the save
    grpo_step(a, "mixgrpo", window_size=2)
    lora_dir = a.save_trained(tmp_path)
    assert (lora_dir / "pytorch_lora_weights.safetensors").is_file()
    pipe = pipeline_cls.from_pretrained(folder, dtype=torch.float32)
    x, sigma, cond = torch.randn(2, *a.latent_shape), torch.tensor([0.8, 0.4]), a.encode(PROMPTS)
    with torch.no_grad():
        base = forward(pipe, x, sigma, cond)
        pipe.load_lora_weights(lora_dir)
        loaded = forward(pipe, x, sigma, cond)
        ours = a.conditional_velocity(x, sigma, cond)
    assert not torch.allclose(loaded, base, atol=1e-6)
    torch.testing.assert_close(loaded, ours, atol=1e-5, rtol=1e-5)


def test_sd3_saved_lora_loads_in_a_plain_pipeline(sd3_folder, tmp_path):
    from diffusers import StableDiffusion3Pipeline

    def forward(pipe, x, sigma, cond):
        return pipe.transformer(
            hidden_states=x, encoder_hidden_states=cond.embeds, pooled_projections=cond.pooled, timestep=1000 * sigma
        ).sample

    _lora_round_trip("sd3", sd3_folder, tmp_path, StableDiffusion3Pipeline, forward)


def test_flux_saved_lora_loads_in_a_plain_pipeline(flux_folder, tmp_path):
    from diffusers import FluxPipeline

    def forward(pipe, x, sigma, cond):
        B, _, h, w = x.shape
        out = pipe.transformer(
            hidden_states=pack_latents(x),
            encoder_hidden_states=cond.embeds,
            pooled_projections=cond.pooled,
            timestep=sigma,
            img_ids=image_ids(h, w),
            txt_ids=torch.zeros(cond.embeds.shape[1], 3),
            guidance=torch.full((B,), 3.5),
        ).sample
        return unpack_latents(out, height=h, width=w)

    _lora_round_trip("flux", flux_folder, tmp_path, FluxPipeline, forward)


def test_full_finetuning_saves_a_loadable_transformer(sd3_folder, tmp_path):
    from diffusers import SD3Transformer2DModel

    a = load("sd3", sd3_folder)
    grpo_step(a, "flow_grpo")
    out = a.save_trained(tmp_path)
    reloaded = SD3Transformer2DModel.from_pretrained(out)
    trained = a.transformer.state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in reloaded.state_dict().items())
