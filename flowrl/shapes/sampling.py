"""Euler ODE sampler for the ShapeWorld model (evaluation, pretraining checks and the `sample` CLI).

It samples on diffusers' SD3 grid (`flowrl.flow.sd3_time_grid`: the scheduler the pipeline itself uses), so an
image drawn here equals the pipeline's own ``pipe(prompt, ...)`` up to float rounding for the same initial noise.
"""

from typing import Any

import torch

from flowrl.flow.grid import sd3_time_grid
from flowrl.shapes.model import ShapeWorldModel, decode_latents, encode_prompts, velocity


def shifted_sigmas(num_inference_steps: int, *, shift: float = 3.0) -> torch.Tensor:
    """The `(T + 1,)` float32 sigmas of the pipeline's scheduler (`flowrl.flow.sd3_time_grid`), 1 -> sigma_min -> 0."""
    if num_inference_steps < 1 or shift <= 0:
        raise ValueError(f"need num_inference_steps >= 1 and shift > 0, got {num_inference_steps} and {shift}.")
    return sd3_time_grid(num_inference_steps, shift=shift).float()


@torch.no_grad()
def sample_latents(
    model: ShapeWorldModel,
    prompts: list[str],
    *,
    generator: torch.Generator,
    num_inference_steps: int = 10,
    guidance_scale: float = 4.0,
    shift: float = 3.0,
) -> torch.Tensor:
    """Latents of one image per prompt: the Euler ODE x_next = x + (sigma_next - sigma) * v(x, sigma) from N(0, I).

    Args:
        model (`ShapeWorldModel`): the model.
        prompts (`list[str]`): B prompts.
        generator (`torch.Generator`): seeds the initial noise (a CPU generator; noise is moved to the device).
        num_inference_steps (`int`, defaults to 10): Euler steps.
        guidance_scale (`float`, defaults to 4.0): classifier-free guidance scale.
        shift (`float`, defaults to 3.0): SD3 time shift of the grid.

    Returns:
        `torch.Tensor`: float32 (B, C, h, w) latents on the model's device.
    """
    device = model.transformer.device
    shape = (len(prompts), *model.latent_shape)
    x = torch.randn(shape, generator=generator, dtype=torch.float32).to(device)  # (B, C, h, w)
    cond = encode_prompts(model, prompts)
    uncond = encode_prompts(model, [""])
    sigmas = shifted_sigmas(num_inference_steps, shift=shift).tolist()
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:], strict=True):
        v = velocity(model, x, sigma, cond, guidance_scale=guidance_scale, uncond=uncond)  # (B, C, h, w)
        x = x + (sigma_next - sigma) * v
    return x


@torch.no_grad()
def sample_images(model: ShapeWorldModel, prompts: list[str], **kwargs: Any) -> torch.Tensor:
    """Generate one image per prompt: `sample_latents` (same keyword arguments), then the VAE decoder.

    Returns:
        `torch.Tensor`: float32 (B, 3, H, W) images in [0, 1] on the CPU.
    """
    return decode_latents(model, sample_latents(model, prompts, **kwargs))
