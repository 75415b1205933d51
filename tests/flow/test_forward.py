"""Forward-process objectives (DiffusionNFT, AWM): rows, optimality probability, the losses against independent
per-row references and their on-policy gradients, the old-policy decay schedules."""

import pytest
import torch

from flowrl.flow.forward import (
    ForwardRows,
    awm_loss,
    forward_rows,
    nft_loss,
    old_policy_decay,
    optimality_probability,
)
from flowrl.flow.grid import time_grid
from flowrl.flow.methods import build_method


def _rows(n=3, per_sample=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, 3, 8, 8, generator=g)
    sigmas = time_grid(8, shift=3.0)[:-1]
    return x0, sigmas, forward_rows(x0, sigmas, per_sample=per_sample, generator=g)


def test_rows_noise_each_sample_at_distinct_schedule_sigmas():
    x0, sigmas, rows = _rows()
    assert rows.sample.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    for i in range(3):
        picked = rows.sigma[rows.sample == i]
        assert picked.unique().numel() == 4  # distinct
        assert all(torch.isclose(sigmas.float(), s).any() for s in picked)  # on the schedule
    torch.testing.assert_close(rows.x0, x0[rows.sample])
    # x_s = (1 - s) x0 + s eps with eps standard normal: recover eps and look at its moments
    s = rows.sigma.view(-1, 1, 1, 1)
    eps = (rows.xs - (1 - s) * rows.x0) / s
    assert abs(eps.mean().item()) < 0.1 and abs(eps.std().item() - 1.0) < 0.1


def test_rows_validate_the_count():
    x0 = torch.zeros(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"per_sample must be in \[1, 3\]"):
        forward_rows(x0, torch.tensor([1.0, 0.5, 0.2]), per_sample=4)


def test_optimality_probability_by_hand():
    adv = torch.tensor([0.0, 5.0, -5.0, 10.0, 2.5, -1.0])
    expected = torch.tensor([0.5, 1.0, 0.0, 1.0, 0.75, 0.4])
    torch.testing.assert_close(optimality_probability(adv, adv_max=5.0), expected)


def _reference_nft(v_theta, v_old, rows, r, beta, scale):
    # an independent per-row loop in float64, written from the formula in the module docstring
    out = []
    for i in range(v_theta.shape[0]):
        vt, vo, s = v_theta[i].double(), v_old[i].double(), float(rows.sigma[i])
        xs, x0 = rows.xs[i].double(), rows.x0[i].double()
        total = 0.0
        for v, w in ((beta * vt + (1 - beta) * vo, float(r[i])), ((1 + beta) * vo - beta * vt, 1 - float(r[i]))):
            err = xs - s * v - x0
            total = total + w * (err**2).mean() / max(err.abs().mean().item(), 1e-5)
        out.append(scale / beta * total)
    return torch.stack(out)


def test_nft_on_policy_gradient_is_advantage_weighted_flow_matching():
    # at v_theta = v_old both implicit policies equal v_old, so d loss / d v_theta = scale (2r - 1) dL/dv: the
    # advantage-weighted (self-normalised) flow-matching gradient; r = 1/2 gives none
    _, _, rows = _rows()
    g = torch.Generator().manual_seed(2)
    v_old = torch.randn(12, 3, 8, 8, generator=g)
    r = torch.rand(12, generator=g)
    r[0] = 0.5
    v = v_old.clone().requires_grad_(True)
    nft_loss(v, v_old, rows, r, beta=0.3, scale=5.0).sum().backward()
    w = v_old.clone().requires_grad_(True)
    s = rows.sigma.view(-1, 1, 1, 1)
    err = rows.xs - s * w - rows.x0
    fm = (err**2).flatten(1).mean(1) / err.detach().abs().flatten(1).mean(1)
    (5.0 * (2 * r - 1) * fm).sum().backward()
    torch.testing.assert_close(v.grad, w.grad, rtol=1e-4, atol=1e-7)
    assert v.grad[0].abs().max() < 1e-6


def test_nft_rejects_a_non_positive_beta():
    _, _, rows = _rows(n=1, per_sample=1)
    z = torch.zeros(1, 3, 8, 8)
    with pytest.raises(ValueError, match="beta must be > 0"):
        nft_loss(z, z, rows, torch.ones(1), beta=0.0)


def test_old_policy_decay_schedules_of_the_anchor():
    assert [old_policy_decay(s) for s in (0, 100, 499, 500, 10_000)] == [0.0, 0.1, 0.499, 0.5, 0.5]
    ocr = dict(rate=0.0075, cap=0.999, warmup=75)
    assert old_policy_decay(74, **ocr) == 0.0 and old_policy_decay(75, **ocr) == 0.0
    assert old_policy_decay(175, **ocr) == pytest.approx(0.75) and old_policy_decay(1000, **ocr) == 0.999


def test_diffusion_nft_method_samples_ode_chains_and_refuses_the_guard():
    m = build_method("diffusion_nft")
    assert m.plan.num_roots == 24 and m.plan.num_inference_steps == 10
    assert all(s.kernel == "ode_euler" and not s.trained for s in m.plan.steps)
    assert m.forward.per_sample == 9 and m.kl_beta == 1e-4 and m.advantage_kwargs["scale"] == "batch"
    with pytest.raises(ValueError, match="GRPO-Guard corrects the importance ratios"):
        build_method("diffusion_nft", guard=True)


def test_rows_are_a_named_tuple_of_aligned_tensors():
    _, _, rows = _rows(n=2, per_sample=3)
    assert isinstance(rows, ForwardRows) and {t.shape[0] for t in rows} == {6}


def _reference_awm(v_theta, v_old, rows, r, power, ema_beta):
    # per-row loop in float64 from AWM's formulas: target eps - x0, ghuber-reweighted log-likelihood surrogate
    out = []
    for i in range(v_theta.shape[0]):
        s = float(rows.sigma[i])
        eps = (rows.xs[i].double() - (1 - s) * rows.x0[i].double()) / s
        mse = ((v_theta[i].double() - (eps - rows.x0[i].double())) ** 2).mean()
        l_prime = -((mse + 1e-10) ** power - 1e-10**power) * s / power
        adv = 2 * float(r[i]) - 1  # AWM's advantage rescaled to [-1, 1]
        out.append(-adv * l_prime + ema_beta * ((v_theta[i].double() - v_old[i].double()) ** 2).mean())
    return torch.stack(out)


@pytest.mark.parametrize(
    "loss,reference,settings,seed",
    [
        (nft_loss, _reference_nft, {"beta": 1.0, "scale": 5.0}, 1),
        (nft_loss, _reference_nft, {"beta": 0.1, "scale": 5.0}, 1),
        (awm_loss, _reference_awm, {"power": 0.25, "ema_beta": 0.7}, 3),
        (awm_loss, _reference_awm, {"power": 1.0, "ema_beta": 0.7}, 3),
    ],
)
def test_forward_losses_match_an_independent_reference(loss, reference, settings, seed):
    _, _, rows = _rows()
    g = torch.Generator().manual_seed(seed)
    v_theta, v_old = torch.randn(12, 3, 8, 8, generator=g), torch.randn(12, 3, 8, 8, generator=g)
    r = torch.rand(12, generator=g)
    expected = reference(v_theta, v_old, rows, r, *settings.values())  # the reference's positional settings
    torch.testing.assert_close(loss(v_theta, v_old, rows, r, **settings).double(), expected, rtol=1e-5, atol=1e-6)


def test_awm_with_power_one_is_advantage_weighted_flow_matching():
    # p = 1: l' = -s * mse, so the loss is (2r - 1) s mse (+ the trust region, zero on-policy with zero gradient)
    _, _, rows = _rows()
    g = torch.Generator().manual_seed(4)
    v_old = torch.randn(12, 3, 8, 8, generator=g)
    r = torch.rand(12, generator=g)
    v = v_old.clone().requires_grad_(True)
    loss = awm_loss(v, v_old, rows, r, power=1.0, ema_beta=1.0)
    s = rows.sigma.view(-1, 1, 1, 1)
    mse = ((v_old - (rows.xs - rows.x0) / s) ** 2).flatten(1).mean(1)
    torch.testing.assert_close(loss, (2 * r - 1) * rows.sigma * mse, rtol=1e-5, atol=1e-7)
    loss.sum().backward()
    expected = (2 * r - 1).view(-1, 1, 1, 1) * s * 2 * (v_old - (rows.xs - rows.x0) / s) / v_old[0].numel()
    torch.testing.assert_close(v.grad, expected, rtol=1e-4, atol=1e-7)


def test_awm_method_is_a_forward_process_method():
    m = build_method("awm")
    assert m.plan.num_roots == 24 and m.plan.num_inference_steps == 14 and m.forward.per_sample == 6
    assert m.kl_beta == 1e-3 and m.forward.old_decay(10_000) == 0.3
    with pytest.raises(ValueError, match="GRPO-Guard corrects the importance ratios"):
        build_method("awm", guard=True)
