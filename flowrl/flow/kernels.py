"""Step kernels of the flow-matching MDP: each returns the Gaussian transition ``x_next ~ N(mean, std^2)``.

Sampling is ``mean + std * noise`` and scoring is `gaussian_logprob(x_next, mean, std)`, so rollout and the
training-time recomputation run the same code (no ``prev_sample=`` switch). Conventions (docs/flow_methods.md,
Notation): ``sigma`` decreases from 1 (noise) to 0 (data), ``Delta = sigma - sigma_next > 0``, ``v = eps - x0``,
``x0_hat = x - sigma v`` and ``x1_hat = x + (1 - sigma) v``.

All arithmetic is done in at least fp32 (the SDE mean overflows in bf16, flow_grpo `sd3_sde_with_logprob.py`).
`sigma` and `sigma_next` are Python floats, 0-d tensors or `(B,)` tensors; `std` is returned with `x`'s rank
(`(B, 1, ..., 1)` or `()`), so image `(B, C, H, W)` and video `(B, C, F, H, W)` latents work unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple, Protocol

import torch

from flowrl.flow.broadcast import append_dims, compute_dtype


class Step(NamedTuple):
    """A Gaussian step ``x_next ~ N(mean, std^2 I)``; ``std == 0`` is a deterministic (ODE) step."""

    mean: torch.Tensor  # (B, *latent), at least fp32
    std: torch.Tensor  # broadcastable to mean: (B, 1, ..., 1) or ()


def _prepare(x: torch.Tensor, v: torch.Tensor, sigma, sigma_next):
    dtype = compute_dtype(x, v)
    x, v = x.to(dtype), v.to(dtype)
    s = append_dims(torch.as_tensor(sigma, dtype=dtype, device=x.device), x.ndim)
    s_next = append_dims(torch.as_tensor(sigma_next, dtype=dtype, device=x.device), x.ndim)
    return x, v, s, s_next


def ode_euler(x: torch.Tensor, v: torch.Tensor, sigma, sigma_next) -> Step:
    """Euler step of the probability-flow ODE ``dx/dsigma = v``: ``mean = x - Delta v``, ``std = 0``."""
    x, v, s, s_next = _prepare(x, v, sigma, sigma_next)
    return Step(mean=x + (s_next - s) * v, std=torch.zeros_like(s_next))


def _reverse_sde_mean(x, v, s, s_next, diffusion_sq):
    # Euler-Maruyama of dx = [v - (g^2 / 2) score] dsigma with score = -(x + (1 - sigma) v) / sigma
    # (docs/flow_methods.md): mean = x + dsig [v + g^2 / (2 sigma) (x + (1 - sigma) v)], dsig = sigma_next - sigma.
    dsig = s_next - s
    return x + dsig * (v + diffusion_sq / (2 * s) * (x + (1 - s) * v))


def flow_sde(x: torch.Tensor, v: torch.Tensor, sigma, sigma_next, *, noise_level: float) -> Step:
    """Flow-GRPO's marginal-preserving SDE step (arXiv 2505.05470; flow_grpo `sd3_sde_with_logprob.py`, "sde").

    ``g = a sqrt(sigma / (1 - sigma))`` (at ``sigma = 1`` the denominator uses ``1 - sigma_next``, which is the
    official ``sigmas[1]`` substitution on the first step of the grid);
    ``mean = x (1 - g^2 Delta / (2 sigma)) - v Delta (1 + g^2 (1 - sigma) / (2 sigma))``; ``std = g sqrt(Delta)``.
    ``noise_level = 0`` is exactly `ode_euler`.

    Args:
        x: `(B, *latent)` state at `sigma`.
        v: `(B, *latent)` velocity at (x, sigma) (CFG already applied).
        sigma, sigma_next: current and next noise level, ``sigma > sigma_next >= 0``.
        noise_level: a (0.7 SD3.5-M, 0.9 FLUX.1-dev in flow_grpo configs).
    """
    x, v, s, s_next = _prepare(x, v, sigma, sigma_next)
    denom = 1 - torch.where(s == 1, s_next, s)
    g_sq = noise_level**2 * s / denom
    return Step(mean=_reverse_sde_mean(x, v, s, s_next, g_sq), std=torch.sqrt(g_sq * (s - s_next)))


def dance_sde(x: torch.Tensor, v: torch.Tensor, sigma, sigma_next, *, eta: float) -> Step:
    """DanceGRPO's SDE step (arXiv 2505.07818; DanceGRPO `flux_step`): the same drift with constant diffusion eta.

    ``mean = x - Delta v + (eta^2 / 2) s_hat Delta``, ``s_hat = -(x - (1 - sigma) x0_hat) / sigma^2``, i.e.
    ``mean = x - Delta [v + eta^2 / (2 sigma) (x + (1 - sigma) v)]``; ``std = eta sqrt(Delta)``.

    Args:
        eta: diffusion coefficient (0.3 FLUX / Qwen-Image / Wan in DanceGRPO scripts; BranchGRPO reuses 0.3).
    """
    x, v, s, s_next = _prepare(x, v, sigma, sigma_next)
    g_sq = torch.full_like(s, eta**2)
    return Step(mean=_reverse_sde_mean(x, v, s, s_next, g_sq), std=torch.sqrt(g_sq * (s - s_next)))


def cps(x: torch.Tensor, v: torch.Tensor, sigma, sigma_next, *, noise_level: float) -> Step:
    """Coefficients-preserving sampling (arXiv 2509.05952; flow_grpo "cps", used by Flow-GRPO-Fast nocfg configs).

    ``std = sigma_next sin(a pi / 2)``; ``mean = (1 - sigma_next) x0_hat + sqrt(sigma_next^2 - std^2) x1_hat``, so
    ``x_next`` has exactly the flow marginal's signal and noise coefficients at `sigma_next`.
    Note: flow_grpo scores CPS with ``-mean_d (x_next - mean)^2`` (constants and 1/(2 std^2) dropped); flowrl scores
    every kernel with the full `gaussian_logprob`, so CPS log-ratios are ``1 / (2 std^2)`` times larger than the
    official ones and the official clip 1e-5 does not transfer as is; ``method.cps_logprob=flow_grpo`` scores CPS
    steps the official way (`flowrl.flow.loss.cps_flow_grpo_logprob`).

    Args:
        noise_level: a in [0, 1] (0.8 in flow_grpo's README: "works well without tuning").
    """
    x, v, s, s_next = _prepare(x, v, sigma, sigma_next)
    std = s_next * math.sin(noise_level * math.pi / 2)
    x0_hat = x - s * v
    x1_hat = x + (1 - s) * v
    mean = (1 - s_next) * x0_hat + torch.sqrt((s_next**2 - std**2).clamp(min=0)) * x1_hat
    return Step(mean=mean, std=std)


def dpmpp_2m(
    x: torch.Tensor, v: torch.Tensor, sigma, sigma_next, *, prev_x0: torch.Tensor | None = None, prev_sigma=None
) -> Step:
    """DPM-Solver++ (2M, "midpoint") ODE step in data prediction (Lu et al. 2022; diffusers
    `DPMSolverMultistepScheduler`), as MixGRPO-Flash uses it after the SDE window.

    With ``alpha = 1 - sigma``, ``lambda = log(alpha / sigma)``, ``h = lambda_next - lambda`` and ``D0 = x0_hat``:
    first order ``mean = (sigma_next / sigma) x + alpha_next (1 - e^{-h}) D0``; with the previous prediction
    ``D_prev`` made at `prev_sigma` (``r = (lambda - lambda_prev) / h``) the midpoint correction adds
    ``0.5 alpha_next (1 - e^{-h}) (D0 - D_prev) / r``. ``e^{-h} = alpha sigma_next / (sigma alpha_next)`` is computed
    as a ratio, so ``sigma = 1`` and ``sigma_next = 0`` need no special case; the step into ``sigma_next = 0`` and a
    previous step from ``sigma = 1`` (infinite lambda gap) are first order, as in diffusers (`lower_order_final`).

    Args:
        prev_x0: `(B, *latent)` ``x0_hat`` of the previous step, or None for a first-order step.
        prev_sigma: the noise level at which `prev_x0` was predicted (required with `prev_x0`).
    """
    x, v, s, s_next = _prepare(x, v, sigma, sigma_next)
    alpha, alpha_next = 1 - s, 1 - s_next
    x0_hat = x - s * v
    exp_neg_h = alpha * s_next / (s * alpha_next)
    coef = alpha_next * (1 - exp_neg_h)
    mean = (s_next / s) * x + coef * x0_hat
    if prev_x0 is not None:
        if prev_sigma is None:
            raise ValueError("`dpmpp_2m` got `prev_x0` without `prev_sigma`: pass the noise level of that prediction.")
        s_prev = append_dims(torch.as_tensor(prev_sigma, dtype=x.dtype, device=x.device), x.ndim)
        second = (s_next > 0) & (s_prev < 1)
        h = _log_snr(s_next, second) - _log_snr(s, second)
        h_prev = _log_snr(s, second) - _log_snr(s_prev, second)
        r = torch.where(second, h_prev / torch.where(second, h, torch.ones_like(h)), torch.ones_like(h))
        correction = 0.5 * coef * (x0_hat - prev_x0.to(x.dtype)) / r
        mean = mean + torch.where(second, correction, torch.zeros_like(correction))
    return Step(mean=mean, std=torch.zeros_like(s_next))


def _log_snr(t: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    # lambda = log((1 - t) / t) where it is finite (0 < t < 1), 0 elsewhere (those entries are masked out)
    return torch.log(torch.where(valid, (1 - t) / t, torch.ones_like(t)))


def gaussian_logprob(x_next: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Per-element Gaussian log-density of `x_next` under ``N(mean, std^2)``, averaged over non-batch dims, in fp32.

    ``mean_d[-(x_next - mean)^2 / (2 std^2) - log std - log sqrt(2 pi)]``: the mean (not the sum) over latent
    elements is what every reference repo uses and why published PPO clip ranges are ~1e-4.

    Args:
        x_next: `(B, *latent)` sampled next state (detach it when recomputing; the ratio's gradient flows via mean).
        mean: `(B, *latent)` step mean.
        std: broadcastable to `mean`, > 0 (an ODE step has no density: never score it).

    Returns:
        `(B,)` float32 (float64 if the inputs are float64).
    """
    dtype = compute_dtype(x_next, mean)
    x_next, mean = x_next.to(dtype), mean.to(dtype)
    std = torch.as_tensor(std, dtype=dtype, device=mean.device)
    std = append_dims(std, mean.ndim) if std.ndim == 1 and mean.ndim > 1 else std
    logp = -((x_next - mean) ** 2) / (2 * std**2) - torch.log(std) - 0.5 * math.log(2 * math.pi)
    return logp.reshape(logp.shape[0], -1).mean(-1) if logp.ndim > 1 else logp


def pooled_gaussian_logprob(x_next: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, *, pool: int) -> torch.Tensor:
    """Log-density of the ``pool x pool`` block means of a Gaussian step (the step's low-frequency part), per element.

    With ``x_next = mean + std * eps``, the block mean of the residual is ``N(0, (std / pool)^2)`` per block and
    channel, so this is `gaussian_logprob` of ``avgpool(x_next)`` under ``N(avgpool(mean), (std / pool)^2)``. Used
    as the policy's log-probability, it credits a reward only to the low-frequency part of the injected noise; the
    high-frequency part acts as environment noise. A policy-gradient estimate over ``D`` credited noise dimensions
    from ``N`` samples is mostly noise when ``N << D`` (its signal fraction scales like ``N / D``), so pooling by
    ``k`` divides ``D`` by ``k^2`` (docs/shapeworld_rl.md measures the effect). ``pool = 1`` is `gaussian_logprob`.

    Args:
        x_next, mean: `(B, C, H, W)` with H and W divisible by `pool`.
        std: broadcastable to `mean`, > 0.
        pool: block size (>= 1).

    Returns:
        `(B,)`, as `gaussian_logprob`.
    """
    if pool == 1:
        return gaussian_logprob(x_next, mean, std)
    if pool < 1 or mean.ndim != 4 or mean.shape[-1] % pool or mean.shape[-2] % pool:
        raise ValueError(
            f"pooled_gaussian_logprob needs (B, C, H, W) latents with H and W divisible by pool = {pool}; got "
            f"{tuple(mean.shape)}. Choose a pool that divides the latent size, or 1 (no pooling)."
        )
    dtype = compute_dtype(x_next, mean)  # pool in fp32 at least, as gaussian_logprob scores
    pooled = torch.nn.functional.avg_pool2d
    return gaussian_logprob(pooled(x_next.to(dtype), pool), pooled(mean.to(dtype), pool), torch.as_tensor(std) / pool)


class StepFn(Protocol):
    """Uniform kernel call used by the sampler: the kernel's own hyper-parameter is passed as `noise_level`."""

    def __call__(
        self,
        x: torch.Tensor,
        v: torch.Tensor,
        sigma,
        sigma_next,
        *,
        noise_level: float,
        prev_x0: torch.Tensor | None,
        prev_sigma,
    ) -> Step: ...


KERNELS: dict[str, StepFn | Callable[..., Step]] = {
    "ode_euler": lambda x, v, sigma, sigma_next, *, noise_level, prev_x0, prev_sigma: ode_euler(
        x, v, sigma, sigma_next
    ),
    "flow_sde": lambda x, v, sigma, sigma_next, *, noise_level, prev_x0, prev_sigma: flow_sde(
        x, v, sigma, sigma_next, noise_level=noise_level
    ),
    "dance_sde": lambda x, v, sigma, sigma_next, *, noise_level, prev_x0, prev_sigma: dance_sde(
        x, v, sigma, sigma_next, eta=noise_level
    ),
    "cps": lambda x, v, sigma, sigma_next, *, noise_level, prev_x0, prev_sigma: cps(
        x, v, sigma, sigma_next, noise_level=noise_level
    ),
    "dpmpp_2m": lambda x, v, sigma, sigma_next, *, noise_level, prev_x0, prev_sigma: dpmpp_2m(
        x, v, sigma, sigma_next, prev_x0=prev_x0, prev_sigma=prev_sigma
    ),
}
"""Kernels by name, each called as ``KERNELS[name](x, v, sigma, sigma_next, noise_level=, prev_x0=, prev_sigma=)``.
`noise_level` is a for flow_sde / cps and eta for dance_sde; ODE kernels ignore it."""

STOCHASTIC_KERNELS = frozenset({"flow_sde", "dance_sde", "cps"})


def get_kernel(name: str) -> StepFn:
    """The kernel called `name`; unknown names raise with the valid options."""
    if name not in KERNELS:
        raise ValueError(f"Unknown step kernel {name!r}. Valid: {sorted(KERNELS)}.")
    return KERNELS[name]
