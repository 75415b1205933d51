"""KL regularisers (slot 7 of the core).

Token-level estimators of ``KL(pi_theta || pi_ref)`` from samples of pi_theta (Schulman, "Approximating KL
divergence", 2020), with ``d = ref_logp - logp``:

* k1 = -d (unbiased, high variance, can be negative);
* k2 = d^2 / 2 (biased, low variance; its gradient is the unbiased KL gradient);
* k3 = exp(d) - d - 1 (unbiased, >= 0; GRPO's "low_var_kl").

For the image branch the step policies are Gaussians with the same std, so the KL is closed form.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

KLFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def kl_k1(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """``k1 = logp - ref_logp`` per token, `(B, T)`."""
    return logp.float() - ref_logp.float()


def kl_k2(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """``k2 = (logp - ref_logp)^2 / 2`` per token, `(B, T)`."""
    return 0.5 * (logp.float() - ref_logp.float()) ** 2


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """``k3 = exp(d) - d - 1``, ``d = ref_logp - logp`` clamped to +-20 and the result to <= 10 (verl), `(B, T)`."""
    d = (ref_logp.float() - logp.float()).clamp(-20.0, 20.0)
    return (d.exp() - d - 1).clamp(max=10.0)


def straight_through(estimator: KLFn) -> KLFn:
    """The "+" form (verl `k3+`): the value of `estimator` with the gradient of k2 (the unbiased KL gradient).

    ``out = k2 - sg(k2) + sg(estimator)``.
    """

    def kl_plus(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
        k2 = kl_k2(logp, ref_logp)
        return k2 - k2.detach() + estimator(logp, ref_logp).detach()

    kl_plus.__name__ = f"{getattr(estimator, '__name__', 'kl')}_plus"
    return kl_plus


def gaussian_kl_same_std(mean: torch.Tensor, ref_mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Closed-form ``KL(N(mean, std^2) || N(ref_mean, std^2))`` averaged over non-batch dims (Flow-GRPO's KL).

    ``mean_d (mean - ref_mean)^2 / (2 std^2)``; averaging (not summing) matches the per-element averaged log-prob,
    so published beta values (0.01-0.04) carry over.

    Args:
        mean, ref_mean: `(B, ...)` step means under the policy and the reference.
        std: a scalar, `(B,)`, or any shape that broadcasts against `mean` after appending trailing dims; > 0.

    Returns:
        `(B,)` float32.
    """
    diff = mean.float() - ref_mean.float()
    s = torch.as_tensor(std, dtype=torch.float32, device=diff.device)
    s = s.reshape(s.shape + (1,) * (diff.ndim - s.ndim))  # (B,) -> (B, 1, ..., 1): rank-agnostic
    per_elem = diff**2 / (2 * s**2)
    return per_elem.reshape(per_elem.shape[0], -1).mean(-1) if per_elem.ndim > 1 else per_elem


KL_ESTIMATORS: dict[str, KLFn] = {
    "k1": kl_k1,
    "k2": kl_k2,
    "k3": kl_k3,
    "k1+": straight_through(kl_k1),
    "k3+": straight_through(kl_k3),
}
