"""Forward-process objectives: train on freshly noised copies of the policy's own clean samples.

DiffusionNFT (arXiv 2509.16117, NVlabs/DiffusionNFT `scripts/train_nft_sd3.py`; docs/flow_methods.md,
diffusion_nft) needs no step log-probability: any sampler (here the tree sampler's ODE chains) draws clean samples
``x0``, the reward turns into an optimality probability ``r``, and the policy is trained on the noising process
``x_s = (1 - s) x0 + s eps`` at a few schedule sigmas with fresh noise. Its loss (paper eq. 5 with the anchor's
x0-space, self-normalised form) mixes an implicit positive and negative policy around the old (sampling) one::

    v+ = beta v_theta + (1 - beta) v_old          v- = (1 + beta) v_old - beta v_theta
    x0+- = x_s - s v+-                             L+- = mean (x0+- - x0)^2 / stopgrad(mean |x0+- - x0|)
    loss = scale / beta * [ r L+ + (1 - r) L- ]    r = clamp(A / adv_max / 2 + 0.5, 0, 1)

AWM (Advantage Weighted Matching, arXiv 2509.25050; scxue/advantage_weighted_matching, docs/flow_methods.md,
awm) replaces the step log-likelihood by the pretraining flow-matching loss of the clean sample, weighted by
the advantage, plus a trust region to a slowly averaged copy of the policy (`awm_loss`).

The minimiser of the NFT bracket is ``v_theta = v_old + (2r - 1)(u - v_old) / beta``: a target between the old
velocity and the sample's regression target ``u``, so a sample pulls the policy towards itself when ``r > 1/2``
and away when ``r < 1/2``, with a bounded step (the negative term is a quadratic, not an unbounded push).
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class ForwardRows(NamedTuple):
    """Noised rows of clean samples: one row per (sample, trained sigma)."""

    sample: torch.Tensor  # (B,) long, index of the clean sample each row noises
    sigma: torch.Tensor  # (B,) noise level s in (0, 1]
    x0: torch.Tensor  # (B, C, H, W) the clean sample
    xs: torch.Tensor  # (B, C, H, W) (1 - s) x0 + s eps


def forward_rows(
    x0: torch.Tensor, sigmas: torch.Tensor, *, per_sample: int, generator: torch.Generator | None = None
) -> ForwardRows:
    """``per_sample`` distinct sigmas of `sigmas` per clean sample (a fresh permutation each, DiffusionNFT's
    per-sample shuffle of the schedule), fresh Gaussian noise per row.

    Args:
        x0: `(N, C, H, W)` clean samples.
        sigmas: `(T,)` candidate noise levels (the sampling schedule without its final 0).
        per_sample: rows per sample, 1 <= per_sample <= T.
    """
    N, T = x0.shape[0], sigmas.numel()
    if not 1 <= per_sample <= T:
        raise ValueError(f"per_sample must be in [1, {T}] (the schedule's sigmas), got {per_sample}.")
    picks = torch.stack([torch.randperm(T, generator=generator)[:per_sample] for _ in range(N)])  # (N, k)
    sample = torch.arange(N).repeat_interleave(per_sample)  # (N k,)
    sigma = sigmas.detach().float().cpu()[picks.flatten()].to(x0.device)  # (N k,)
    clean = x0[sample.to(x0.device)].float()
    eps = torch.randn(clean.shape, generator=generator).to(x0.device)  # drawn on the CPU: device-independent
    s = sigma.view(-1, *([1] * (clean.ndim - 1)))
    return ForwardRows(sample, sigma, clean, (1.0 - s) * clean + s * eps)


def optimality_probability(adv: torch.Tensor, *, adv_max: float = 5.0) -> torch.Tensor:
    """DiffusionNFT's ``r = clamp(A / adv_max / 2 + 0.5, 0, 1)`` (advantages clipped to +-adv_max first)."""
    return (adv.float().clamp(-adv_max, adv_max) / adv_max / 2.0 + 0.5).clamp(0.0, 1.0)


def _self_normalised_x0_error(v: torch.Tensor, rows: ForwardRows) -> torch.Tensor:
    # (B,) mean squared x0 error over the mean absolute one (no gradient through the weight; floor 1e-5)
    s = rows.sigma.view(-1, *([1] * (v.ndim - 1)))
    err = rows.xs - s * v.float() - rows.x0
    dims = tuple(range(1, v.ndim))
    weight = err.detach().double().abs().mean(dims).clamp_min(1e-5).float()
    return (err**2).mean(dims) / weight


def nft_loss(
    v_theta: torch.Tensor,
    v_old: torch.Tensor,
    rows: ForwardRows,
    r: torch.Tensor,
    *,
    beta: float = 1.0,
    scale: float = 5.0,
) -> torch.Tensor:
    """`(B,)` DiffusionNFT loss per row (module docstring); `r` `(B,)` optimality probability of each row's sample.

    Defaults: ``beta = 1`` (config.beta; 0.1 for OCR / multi-reward), ``scale = 5`` (= adv_clip_max, the anchor
    multiplies the mean loss by it)."""
    if beta <= 0:
        raise ValueError(f"beta must be > 0 (the NFT strength; 1.0 default, 0.1 faster), got {beta}.")
    v_plus = beta * v_theta + (1.0 - beta) * v_old
    v_minus = (1.0 + beta) * v_old - beta * v_theta
    positive = _self_normalised_x0_error(v_plus, rows)
    negative = _self_normalised_x0_error(v_minus, rows)
    return scale / beta * (r * positive + (1.0 - r) * negative)


def awm_loss(
    v_theta: torch.Tensor,
    v_old: torch.Tensor,
    rows: ForwardRows,
    r: torch.Tensor,
    *,
    power: float = 0.25,
    ema_beta: float = 1.0,
) -> torch.Tensor:
    """`(B,)` AWM loss per row: ``-A l'(v_theta) + ema_beta mean (v_theta - v_old)^2`` with ``A = 2r - 1`` in
    [-1, 1] (AWM clips advantages to +-5 and rescales them to [-1, 1], which is exactly ``2r - 1``).

    ``l = -mean (v_theta - (eps - x0))^2`` in float64 (``eps - x0 = (x_s - x0) / s``), reweighted by the default
    "ghuber" form ``l' = -[(-l + 1e-10)^p - 1e-10^p] s / p`` with p = `power` = 0.25. AWM's configs are strictly
    on-policy (one optimizer step per epoch, PPO clip 1 inactive), so the policy term is the gradient form
    ``-A l'`` of its ratio ``exp(l' - l'_old)``. The second term is its "KL-EMA" trust region (``ema_beta`` = 1)
    against a lagged copy of the weights (decay ``min(0.001 step, 0.3)``), which flowrl's old policy provides."""
    if power <= 0:
        raise ValueError(f"power must be > 0 (AWM's ghuber exponent, default 0.25), got {power}.")
    dims = tuple(range(1, v_theta.ndim))
    s = rows.sigma.double().view(-1, *([1] * (v_theta.ndim - 1)))
    target = (rows.xs.double() - rows.x0.double()) / s  # eps - x0
    mse = ((v_theta.double() - target) ** 2).mean(dims)
    floor = 1e-10
    l_prime = -((mse + floor) ** power - floor**power) * rows.sigma.double() / power
    trust = ((v_theta.float() - v_old.float()) ** 2).mean(dims)
    return (-(2.0 * r.double() - 1.0) * l_prime).float() + ema_beta * trust


def old_policy_decay(step: int, *, rate: float = 0.001, cap: float = 0.5, warmup: int = 0) -> float:
    """Decay of the lagged sampling policy ``theta_old <- d theta_old + (1 - d) theta`` after optimizer step `step`:
    ``d = min(rate * (step - warmup), cap)``, 0 before `warmup`. DiffusionNFT's type 1 is (0.001, 0.5, 0), type 2
    (OCR, "more off-policy") is (0.0075, 0.999, 75)."""
    if step < warmup:
        return 0.0
    return min(rate * (step - warmup), cap)
