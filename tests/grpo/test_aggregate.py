"""Reward aggregation orders, hand-derived. Run: pytest tests/grpo/test_aggregate.py -q"""

import math

import torch

from flowrl.grpo import normalize_then_sum, sum_then_normalize, weighted_sum

nan = float("nan")


def test_weighted_sum_skips_nan_and_marks_unscorable():
    r = torch.tensor([[1.0, nan], [nan, nan], [2.0, 3.0]])
    out = weighted_sum(r, weights=torch.tensor([0.5, 2.0]))
    # [0.5 * 1, unscorable, 0.5 * 2 + 2 * 3]
    assert out[0] == 0.5 and math.isnan(out[1]) and out[2] == 7.0


def test_sum_then_normalize_leaves_unscorable_out():
    r = torch.tensor([[1.0], [3.0], [nan], [5.0]])
    adv = sum_then_normalize(r, torch.tensor([0, 0, 0, 1]), weights=torch.ones(1))
    # group 0 scored on [1, 3]: mean 2, std sqrt(2); the NaN sample gets 0; group 1 is a singleton
    a = 1 / (math.sqrt(2) + 1e-4)
    torch.testing.assert_close(adv, torch.tensor([-a, a, 0.0, 0.0]))


def test_the_two_orders_differ_as_derived():
    # r1 = [0, 10] dominates the raw sum; normalising first gives each reward equal say
    r = torch.tensor([[0.0, 1.0], [10.0, 0.0]])
    g, w = torch.tensor([0, 0]), torch.ones(2)
    a_sum = 9 / 2 / (math.sqrt(2 * 4.5**2) + 1e-4)  # sums [1, 10]: mean 5.5, std sqrt(40.5)
    torch.testing.assert_close(sum_then_normalize(r, g, weights=w), torch.tensor([-a_sum, a_sum]))
    # per reward: [-5, 5] / (sqrt(50) + eps) and [0.5, -0.5] / (sqrt(0.5) + eps): both about +-0.7071, opposite
    a1, a2 = 5 / (math.sqrt(50) + 1e-4), 0.5 / (math.sqrt(0.5) + 1e-4)
    torch.testing.assert_close(normalize_then_sum(r, g, weights=w), torch.tensor([a2 - a1, a1 - a2]))


def test_batch_normalize_z_scores_the_sum():
    gen = torch.Generator().manual_seed(3)
    r = torch.randn(12, 3, generator=gen)
    adv = normalize_then_sum(r, torch.arange(12) // 4, weights=torch.tensor([1.0, 0.5, 2.0]), batch_normalize=True)
    assert abs(adv.mean().item()) < 1e-6 and abs(adv.std().item() - 1) < 1e-3
