"""Surrogates and ratio transforms against hand-derived values and torch.distributions.

Run: pytest tests/grpo/test_surrogates.py -q
"""

import math

import pytest
import torch

from flowrl.grpo import (
    cispo_surrogate,
    clipped_surrogate,
    ratio_norm_log_ratio,
    reinforce_surrogate,
    sequence_log_ratio,
    token_log_ratio,
)


def test_clipped_surrogate_hand_derived():
    # log r = 1 -> r = e. A = +1: min(e * 1, 1.2 * 1) = 1.2 -> loss -1.2 (clipped above).
    # A = -1: min(-e, -1.2) = -e -> loss e (the pessimistic branch, not clipped).
    log_r = torch.tensor([[1.0, 1.0]])
    adv = torch.tensor([[1.0, -1.0]])
    loss, stats = clipped_surrogate(log_r, adv, log_r, eps_low=0.2, eps_high=0.2)
    torch.testing.assert_close(loss, torch.tensor([[-1.2, math.e]]))
    assert stats["clip_high"].tolist() == [[1.0, 0.0]] and stats["clip_low"].tolist() == [[0.0, 0.0]]


def test_decoupled_bounds_and_dual_clip_hand_derived():
    # log r = ln 0.5 -> r = 0.5 < 1 - 0.2, A = -1: max(0.5, 0.8) = 0.8 (clipped below, counted as clip_low)
    # log r = 2 -> r = e^2 = 7.389, A = -1: PPO gives 7.389; dual clip c = 3 caps it at 3
    # log r = 0.25 -> r = 1.284 with eps_high 0.28: A = +1 gives -1.28
    log_r = torch.tensor([[math.log(0.5), 2.0, 0.25]])
    adv = torch.tensor([[-1.0, -1.0, 1.0]])
    loss, stats = clipped_surrogate(log_r, adv, log_r, eps_low=0.2, eps_high=0.28, dual_clip=3.0)
    torch.testing.assert_close(loss, torch.tensor([[0.8, 3.0, -1.28]]))
    assert stats["clip_low"].tolist() == [[1.0, 0.0, 0.0]] and stats["clip_high"].tolist() == [[0.0, 0.0, 1.0]]
    with pytest.raises(ValueError, match="> 1"):
        clipped_surrogate(log_r, adv, log_r, eps_low=0.2, eps_high=0.2, dual_clip=0.5)


def test_dual_clip_changes_nothing_for_positive_advantages():
    log_r = torch.randn(4, 6) * 3
    adv = torch.rand(4, 6) + 0.1
    a, _ = clipped_surrogate(log_r, adv, log_r, eps_low=0.2, eps_high=0.2)
    b, _ = clipped_surrogate(log_r, adv, log_r, eps_low=0.2, eps_high=0.2, dual_clip=3.0)
    torch.testing.assert_close(a, b)


def test_cispo_hand_derived():
    # r = 10 clipped to 1 + 4 = 5 and detached: loss = -5 * A * logp, gradient wrt logp = -5 * A
    logp = torch.tensor([[-2.0]], requires_grad=True)
    old = logp.detach() - math.log(10.0)
    loss, _ = cispo_surrogate(
        token_log_ratio(logp, old, torch.ones(1, 1)), torch.tensor([[0.5]]), logp, eps_low=1e9, eps_high=4.0
    )
    torch.testing.assert_close(loss, torch.tensor([[-5 * 0.5 * -2.0]]))
    loss.sum().backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[-2.5]]))


@pytest.mark.parametrize(
    "surrogate",
    [
        lambda lr, a, lp: clipped_surrogate(lr, a, lp, eps_low=1e-4, eps_high=1e-4),
        lambda lr, a, lp: clipped_surrogate(lr, a, lp, eps_low=0.2, eps_high=0.28, dual_clip=3.0),
        lambda lr, a, lp: cispo_surrogate(lr, a, lp, eps_low=1e9, eps_high=4.0),
        reinforce_surrogate,
    ],
)
def test_on_policy_gradient_is_reinforce(surrogate):
    # On the first on-policy step r = 1 exactly: every surrogate's gradient wrt logp must be -A (per token).
    logp = torch.randn(3, 5, requires_grad=True)
    adv = torch.randn(3, 5)
    loss, _ = surrogate(token_log_ratio(logp, logp.detach(), torch.ones(3, 5)), adv, logp)
    loss.sum().backward()
    torch.testing.assert_close(logp.grad, -adv)


def test_token_ratio_is_clamped():
    out = token_log_ratio(torch.tensor([[100.0, -100.0]]), torch.zeros(1, 2), torch.ones(1, 2))
    assert out.tolist() == [[20.0, -20.0]]


def test_sequence_log_ratio_hand_derived():
    # log r = [1, 3, (masked 100)] -> mean over valid = 2, broadcast to every position
    logp = torch.tensor([[1.0, 3.0, 100.0]])
    out = sequence_log_ratio(logp, torch.zeros(1, 3), torch.tensor([[1.0, 1.0, 0.0]]))
    assert out.tolist() == [[2.0, 2.0, 2.0]]


def test_ratio_norm_identity_against_torch_distributions():
    # x_next = mu_old + s * eps. With log-probs from torch.distributions.Normal (mean over pixels),
    # RatioNorm must give mean(eps * (mu_new - mu_old)) exactly (docs/flow_methods.md, GRPO-Guard).
    torch.set_default_dtype(torch.float64)
    try:
        B, shape = 4, (3, 8, 8)
        mu_old, dmu = torch.randn(B, *shape), 0.05 * torch.randn(B, *shape)
        std = torch.tensor([0.3, 0.1, 0.02, 0.7])
        s = std.view(B, 1, 1, 1)
        eps = torch.randn(B, *shape)
        x_next = mu_old + s * eps

        def logp(mu):
            return torch.distributions.Normal(mu, s.expand_as(mu)).log_prob(x_next).mean(dim=(1, 2, 3))

        log_r = (logp(mu_old + dmu) - logp(mu_old))[:, None]  # (B, 1)
        shift_sq = (dmu**2).mean(dim=(1, 2, 3))[:, None]
        out = ratio_norm_log_ratio(log_r, std=std[:, None], mean_shift_sq=shift_sq)
        expected = (eps * dmu).mean(dim=(1, 2, 3))[:, None]
        torch.testing.assert_close(out.double(), expected, atol=1e-6, rtol=1e-5)
        # std = 0 (an ODE step) gives 0, never NaN
        zero = ratio_norm_log_ratio(log_r, std=torch.zeros(B, 1), mean_shift_sq=shift_sq)
        assert torch.equal(zero, torch.zeros(B, 1, dtype=zero.dtype))
    finally:
        torch.set_default_dtype(torch.float32)
