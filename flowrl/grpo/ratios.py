"""Ratio transforms (slot 4a of the core): per-edge log importance ratios ``log r = log pi_theta - log pi_old``.

A ratio transform maps `(logp, old_logp, mask)` to a `(B, T)` log-ratio that a surrogate consumes. Log-ratios are
clamped to +-20 before anyone exponentiates them (verl), so a wild off-policy token cannot overflow.
"""

from __future__ import annotations

import torch

LOG_RATIO_CLAMP = 20.0


def token_log_ratio(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-token (per denoising step) log-ratio ``log r_{i,t} = logp_{i,t} - old_logp_{i,t}`` (PPO, GRPO).

    Args:
        logp: `(B, T)` log-probs under the current policy (with grad).
        old_logp: `(B, T)` log-probs recorded at rollout.
        mask: `(B, T)` unused; kept so every ratio transform has the same signature.
    """
    del mask
    return (logp.float() - old_logp.float()).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)


def sequence_log_ratio(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """GSPO sequence log-ratio ``log s_i = (1/|o_i|) sum_t m_{i,t} log r_{i,t}``, broadcast to every token.

    Zheng et al. 2025 (GSPO), eq. 7: the importance weight is the length-normalised sequence likelihood ratio;
    the gradient flows through every token of the sequence.

    Args:
        logp, old_logp: `(B, T)` log-probs.
        mask: `(B, T)` valid tokens.

    Returns:
        `(B, T)`, constant along T.
    """
    m = mask.float()
    log_r = (logp.float() - old_logp.float()) * m
    seq = log_r.sum(-1) / m.sum(-1).clamp(min=1)  # (B,)
    return seq.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)[:, None].expand_as(log_r)


def ratio_norm_log_ratio(log_ratio: torch.Tensor, *, std: torch.Tensor, mean_shift_sq: torch.Tensor) -> torch.Tensor:
    """GRPO-Guard RatioNorm (Wang et al. 2025, arXiv 2510.22319; docs/flow_methods.md, GRPO-Guard).

    With ``x_next = mu_old + std * eps`` and ``dmu = mu_theta - mu_old`` the per-step log-ratio of the Gaussian
    policy is ``log r = mean_d[eps * dmu] / std - mean_d[dmu^2] / (2 std^2)``: the second term biases r below 1,
    worst at low-noise steps. RatioNorm removes the bias and rescales by the step's std::

        log r_hat = std * (log r + mean_d[dmu^2] / (2 std^2))   ( = mean_d[eps * dmu] exactly )

    Args:
        log_ratio: `(B, T)` plain log-ratio.
        std: `(B, T)` the step's Gaussian std ``sigma_t * sqrt(Delta_t)`` (> 0 on trained steps; 0 gives 0).
        mean_shift_sq: `(B, T)` ``mean_d (mu_theta - mu_old)^2`` over the latent dimensions.

    Returns:
        `(B, T)` normalised log-ratio.
    """
    s = std.float()
    safe = torch.where(s > 0, s, torch.ones_like(s))  # untrained (ODE) edges have std 0: their value is 0
    normed = safe * (log_ratio.float() + mean_shift_sq.float() / (2 * safe**2))
    return torch.where(s > 0, normed, torch.zeros_like(normed))
