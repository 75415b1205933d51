"""VADE (arXiv 2511.18902 [?]): per-sample difficulty as a Beta posterior, a Thompson sampler that picks the samples
most likely to give a group with reward variance, and a two-scale decay of the posterior toward its prior.

For sample i with posterior ``Beta(a_i, b_i)`` of its success rate:

* update after a group of G rollouts with s successes (partial rewards count fractionally):
  ``a_i <- a_i + s``, ``b_i <- b_i + (G - s)`` (conjugate Bernoulli update);
* two-scale decay toward the prior ``(a_0, b_0)`` before each update, so old evidence fades as the policy changes:
  ``a <- a_0 + gamma (a - a_0)`` with ``gamma = gamma_fast`` for samples seen in the last ``window`` steps and
  ``gamma_slow`` otherwise (values [?]: defaults 0.9 / 0.99, hooks);
* Thompson sampling: draw ``p_i ~ Beta(a_i, b_i)`` and score ``p_i (1 - p_i)`` (the expected reward variance of a
  group), then take the top-k samples of the batch.
"""

from __future__ import annotations

import torch


def beta_update(
    a: torch.Tensor, b: torch.Tensor, successes: torch.Tensor, trials: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Conjugate update ``(a + s, b + n - s)`` of `(N,)` posteriors."""
    return a + successes, b + (trials - successes)


def decay_to_prior(
    a: torch.Tensor,
    b: torch.Tensor,
    recent: torch.Tensor,
    *,
    a0: float = 1.0,
    b0: float = 1.0,
    gamma_fast: float = 0.9,
    gamma_slow: float = 0.99,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``a0 + gamma (a - a0)`` (and for b) with gamma_fast where `recent` `(N,)` bool, else gamma_slow."""
    gamma = torch.where(recent, torch.tensor(gamma_fast), torch.tensor(gamma_slow))
    return a0 + gamma * (a - a0), b0 + gamma * (b - b0)


def thompson_scores(a: torch.Tensor, b: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """``p (1 - p)`` of one draw ``p ~ Beta(a, b)`` per sample `(N,)` (Beta from two Gamma draws, seeded)."""
    x = torch._standard_gamma(a.float().clone()) if generator is None else _gamma(a.float(), generator)
    y = torch._standard_gamma(b.float().clone()) if generator is None else _gamma(b.float(), generator)
    p = x / (x + y)
    return p * (1 - p)


def _gamma(shape: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    # Marsaglia-Tsang for shape >= 1 (boosted by u^(1/shape) below 1), seeded by `generator`
    boost = shape < 1
    k = torch.where(boost, shape + 1, shape)
    d = k - 1.0 / 3.0
    c = 1.0 / torch.sqrt(9.0 * d)
    out = torch.empty_like(k)
    todo = torch.ones_like(k, dtype=torch.bool)
    while todo.any():
        z = torch.randn(k.shape, generator=generator)
        u = torch.rand(k.shape, generator=generator)
        v = (1 + c * z) ** 3
        ok = (v > 0) & (torch.log(u.clamp(min=1e-30)) < 0.5 * z**2 + d - d * v + d * torch.log(v.clamp(min=1e-30)))
        take = todo & ok
        out[take] = (d * v)[take]
        todo &= ~ok
    u = torch.rand(k.shape, generator=generator)
    return torch.where(boost, out * u ** (1.0 / shape), out)


def thompson_select(a: torch.Tensor, b: torch.Tensor, k: int, *, generator: torch.Generator) -> torch.Tensor:
    """Indices of the `k` samples with the highest Thompson score `(k,)`."""
    return torch.topk(thompson_scores(a, b, generator=generator), k).indices
