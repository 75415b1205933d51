"""Time grids ("sigmas") from 1 (noise) to 0 (data), with SD3's static shift and FLUX's dynamic shift.

Convention (docs/flow_methods.md, Notation): ``x_sigma = (1 - sigma) x0 + sigma eps``. Two grids:

* ``linear`` (`time_grid`): ``linspace(1, 0, T + 1)`` mapped by the shift ``t -> s t / (1 + (s - 1) t)``; what
  FluxPipeline (``linspace(1, 1/T, T)`` + 0) and the FastVideo code of DanceGRPO / MixGRPO / G2RPO sample on.
* ``sd3`` (`sd3_time_grid`): what diffusers' StableDiffusion3Pipeline samples on, and so flow_grpo and TempFlow:
  the shift of ``linspace(1, sigma_min, T)`` with 0 appended, sigma_min the scheduler's shifted ``1 / 1000``.
  At T = 10, shift 3 its last step is 0.0089 -> 0, where the linear grid's is 0.25 -> 0.

FLUX's dynamic shift
``sigma' = e^mu / (e^mu + 1/sigma - 1)`` is the same map with ``s = e^mu``, ``mu`` interpolated linearly in the
number of image tokens (diffusers `calculate_shift`: 256 tokens -> 0.5, 4096 tokens -> 1.15).
"""

from __future__ import annotations

import math

import torch


def shift_sigmas(sigmas: torch.Tensor, *, shift: float) -> torch.Tensor:
    """SD3 static time shift ``s t / (1 + (s - 1) t)`` (maps 0 -> 0 and 1 -> 1; s > 1 spends more steps at high noise).

    Args:
        sigmas: any shape, values in [0, 1].
        shift: s > 0 (SD3.5 uses 3.0; 1.0 is the identity).
    """
    if shift <= 0:
        raise ValueError(f"`shift` must be > 0, got {shift}. SD3.5 uses 3.0; 1.0 leaves the grid unchanged.")
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def unshift_sigmas(sigmas: torch.Tensor, *, shift: float) -> torch.Tensor:
    """Inverse of `shift_sigmas`: ``t = sigma / (s - (s - 1) sigma)``."""
    return sigmas / (shift - (shift - 1) * sigmas)


def time_grid(num_inference_steps: int, *, shift: float = 3.0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The `(T + 1,)` sigmas ``shift(linspace(1, 0, T + 1))`` from 1 to 0 (SD3 / FlowMatchEulerDiscreteScheduler).

    Args:
        num_inference_steps: T >= 1.
        shift: static shift s (SD3.5-M: 3.0, diffusers default for SD3; FastVideo FLUX scripts also use 3.0).
        dtype: float64 by default so grids compare exactly across plans; kernels upcast to at least fp32.

    Returns:
        `(T + 1,)`, strictly decreasing, first entry 1 and last entry 0.
    """
    if num_inference_steps < 1:
        raise ValueError(f"`num_inference_steps` must be >= 1, got {num_inference_steps}.")
    return shift_sigmas(torch.linspace(1.0, 0.0, num_inference_steps + 1, dtype=dtype), shift=shift)


def sd3_time_grid(
    num_inference_steps: int,
    *,
    shift: float = 3.0,
    num_train_timesteps: int = 1000,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """The `(T + 1,)` sigmas of diffusers' `FlowMatchEulerDiscreteScheduler.set_timesteps(T)` for SD3 / SD3.5.

    The scheduler's training sigmas are ``shift(k / N)``, k = N .. 1 (N = `num_train_timesteps`), so
    ``sigma_min = shift(1 / N)``; `set_timesteps` shifts AGAIN ``linspace(1, sigma_min, T)`` and appends 0:
    ``sigmas = [shift(linspace(1, shift(1 / N), T)), 0]``. (diffusers 0.42
    `scheduling_flow_match_euler_discrete.py`, static shift, no Karras / exponential / beta conversion.)

    Args:
        num_inference_steps: T >= 1.
        shift: the scheduler's static shift s (SD3.5-M and SD3.5-L: 3.0).
        num_train_timesteps: N (every SD3 scheduler config: 1000).
        dtype: float64 by default (the scheduler returns float32; the two agree to ~1e-7).

    Returns:
        `(T + 1,)`, strictly decreasing, first entry 1 and last entry 0.
    """
    if num_inference_steps < 1:
        raise ValueError(f"`num_inference_steps` must be >= 1, got {num_inference_steps}.")
    if num_train_timesteps < 2:
        raise ValueError(f"`num_train_timesteps` must be >= 2, got {num_train_timesteps} (SD3 uses 1000).")
    # the scheduler stores its training sigmas in float32: take sigma_min as it does
    sigma_min = float(shift_sigmas(torch.tensor(1.0 / num_train_timesteps, dtype=torch.float32), shift=shift))
    unshifted = torch.linspace(1.0, sigma_min, num_inference_steps, dtype=dtype)
    return torch.cat([shift_sigmas(unshifted, shift=shift), torch.zeros(1, dtype=dtype)])


GRIDS = {"linear": time_grid, "sd3": sd3_time_grid}
"""Grid kinds by name (`method.grid` in the trainer's config): each is ``(T, *, shift) -> (T + 1,) sigmas``."""


def named_grid(name: str, num_inference_steps: int, *, shift: float) -> torch.Tensor:
    """`GRIDS[name](num_inference_steps, shift=shift)`; an unknown name raises with the valid ones."""
    if name not in GRIDS:
        raise ValueError(
            f"Unknown time grid {name!r}. Valid: {sorted(GRIDS)} ('sd3' = diffusers' SD3 scheduler, for SD3 / SD3.5 "
            "and ShapeWorld; 'linear' = shifted linspace(1, 0, T + 1), for FLUX and the FastVideo recipes)."
        )
    return GRIDS[name](num_inference_steps, shift=shift)


def flux_mu(
    image_seq_len: int,
    *,
    base_seq_len: int = 256,
    max_seq_len: int = 4096,
    base_shift: float = 0.5,
    max_shift: float = 1.15,
) -> float:
    """FLUX's resolution-dependent shift exponent (diffusers `calculate_shift`, FLUX scheduler config defaults).

    ``mu = base_shift + (image_seq_len - base_seq_len) * (max_shift - base_shift) / (max_seq_len - base_seq_len)``;
    a 1024x1024 FLUX image has (1024 / 16)^2 = 4096 tokens, so mu = 1.15 and the equivalent static shift is e^1.15.
    """
    slope = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    return base_shift + (image_seq_len - base_seq_len) * slope


def flux_time_grid(
    num_inference_steps: int,
    *,
    image_seq_len: int,
    base_seq_len: int = 256,
    max_seq_len: int = 4096,
    base_shift: float = 0.5,
    max_shift: float = 1.15,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """FLUX dynamic-shift grid: ``e^mu / (e^mu + 1/t - 1)`` on ``linspace(1, 0, T + 1)`` = `time_grid(shift=e^mu)`.

    Args:
        num_inference_steps: T.
        image_seq_len: number of packed image tokens, ``(H / 16) * (W / 16)`` for FLUX latents.
        base_seq_len, max_seq_len, base_shift, max_shift: `flux_mu`'s interpolation points.
    """
    mu = flux_mu(
        image_seq_len, base_seq_len=base_seq_len, max_seq_len=max_seq_len, base_shift=base_shift, max_shift=max_shift
    )
    return time_grid(num_inference_steps, shift=math.exp(mu), dtype=dtype)
