"""Euler ODE sampler for the ShapeWorld model (evaluation and the `sample` CLI)."""

import torch

from flowrl.shapes.model import ShapeWorldModel, encode_prompts, velocity


def shifted_sigmas(num_inference_steps: int, *, shift: float = 3.0) -> torch.Tensor:
    """Time grid from sigma = 1 to 0 with the SD3 shift.

    sigma_i = 1 - i / T for i = 0..T, then sigma' = s * sigma / (1 + (s - 1) * sigma). Shift s > 1 spends more
    steps at high noise, where the layout is decided.

    Args:
        num_inference_steps (`int`): T >= 1.
        shift (`float`, defaults to 3.0): s > 0; 1.0 gives the uniform grid.

    Returns:
        `torch.Tensor`: float32 (T + 1,), decreasing from 1 to 0.
    """
    if num_inference_steps < 1 or shift <= 0:
        raise ValueError(f"need num_inference_steps >= 1 and shift > 0, got {num_inference_steps} and {shift}.")
    sigmas = torch.linspace(1.0, 0.0, num_inference_steps + 1, dtype=torch.float32)  # (T + 1,)
    return shift * sigmas / (1.0 + (shift - 1.0) * sigmas)


@torch.no_grad()
def sample_images(
    model: ShapeWorldModel,
    prompts: list[str],
    *,
    generator: torch.Generator,
    num_inference_steps: int = 10,
    guidance_scale: float = 4.0,
    shift: float = 3.0,
) -> torch.Tensor:
    """Generate one image per prompt with the Euler ODE x_next = x + (sigma_next - sigma) * v(x, sigma).

    Args:
        model (`ShapeWorldModel`): the model.
        prompts (`list[str]`): B prompts.
        generator (`torch.Generator`): seeds the initial noise (a CPU generator; noise is moved to the device).
        num_inference_steps (`int`, defaults to 10): Euler steps.
        guidance_scale (`float`, defaults to 4.0): classifier-free guidance scale.
        shift (`float`, defaults to 3.0): SD3 time shift of the grid.

    Returns:
        `torch.Tensor`: float32 (B, 3, H, W) images in [0, 1] on the CPU.
    """
    size = model.meta["image_size"]
    device = model.transformer.device
    x = torch.randn(len(prompts), 3, size, size, generator=generator, dtype=torch.float32).to(device)  # (B, 3, H, W)
    cond = encode_prompts(model, prompts)
    uncond = encode_prompts(model, [""])
    sigmas = shifted_sigmas(num_inference_steps, shift=shift).tolist()
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:], strict=True):
        v = velocity(model, x, sigma, cond, guidance_scale=guidance_scale, uncond=uncond)  # (B, 3, H, W)
        x = x + (sigma_next - sigma) * v
    return ((x.float().cpu() + 1.0) / 2.0).clamp(0.0, 1.0)
