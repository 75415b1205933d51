"""DisCO / DRPO whole-loss objectives and the rollout-budget planners (Knapsack RL, GVM-RAFT) on hand-made
tensors; expected values derived in the comments.

Run: pytest tests/grpo/test_llm_variants_loss_budget.py -q
"""

import math

import pytest
import torch

from flowrl.grpo.budget import gvm_allocation, knapsack_allocation, knapsack_value, prioritized_prompt_weights
from flowrl.grpo.discriminative import (
    disco_loss,
    drpo_positive_weights,
    kl_hinge,
    mean_logp_score,
    mean_ratio_score,
)


def test_scores():
    logp = torch.tensor([[-1.0, -3.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    torch.testing.assert_close(mean_logp_score(logp, mask), torch.tensor([-2.0]))  # (-1 - 3) / 2
    torch.testing.assert_close(mean_ratio_score(logp, logp, mask), torch.tensor([1.0]))  # r = 1 on-policy


def test_disco_loss_value_and_gradient():
    # question 0: s+ = -1, s- = (-2, -4); question 1 all correct -> skipped; 2 questions in the step
    # tau = 1: lse = log((e^-2 + e^-4) / 2); J_0 = -1 - lse; loss = -J_0 / 2
    scores = torch.tensor([-1.0, -2.0, -4.0, -1.0, -1.5], requires_grad=True)
    correct = torch.tensor([1.0, 0, 0, 1, 1])
    ids = torch.tensor([0, 0, 0, 1, 1])
    loss = disco_loss(scores, correct, ids, tau=1.0, num_questions=2)
    lse = math.log((math.exp(-2) + math.exp(-4)) / 2)
    torch.testing.assert_close(loss, torch.tensor(-(-1 - lse) / 2))
    loss.backward()
    # d loss / d s+ = -1/2 ; d loss / d s-_j = softmax(s-)_j / 2 with softmax = (1, e^-2) / (1 + e^-2)
    soft = 1 / (1 + math.exp(-2))
    torch.testing.assert_close(scores.grad, torch.tensor([-0.5, soft / 2, (1 - soft) / 2, 0.0, 0.0]))
    with pytest.raises(ValueError, match="tau"):
        disco_loss(scores, correct, ids, tau=0.0, num_questions=2)


def test_drpo_weights_favour_short_correct_answers():
    # raw = exp((1 - L / 8) / 0.1): L = 2 -> e^7.5, L = 6 -> e^2.5, wrong -> 0; normalised over the correct ones
    w = drpo_positive_weights(
        torch.tensor([2.0, 6, 4]), torch.tensor([1.0, 1, 0]), torch.zeros(3, dtype=torch.long), max_len=8
    )
    e = math.exp(-5)
    torch.testing.assert_close(w, torch.tensor([1 / (1 + e), e / (1 + e), 0.0]))
    # with these weights the question's objective is the weighted mean over positives
    scores = torch.tensor([-1.0, -3.0, -2.0])
    loss = disco_loss(
        scores, torch.tensor([1.0, 1, 0]), torch.zeros(3, dtype=torch.long), tau=10.0, num_questions=1, pos_weights=w
    )
    lse = 10 * (-2.0 / 10)  # one negative: tau log mean exp(s / tau) = s = -2
    expected = -((1 / (1 + e)) * (-1 - lse) + (e / (1 + e)) * (-3 - lse))
    torch.testing.assert_close(loss, torch.tensor(expected))


def test_kl_hinge_is_zero_inside_the_trust_region():
    mask = torch.ones(2, 2)
    kl = torch.full((2, 2), 3e-4, requires_grad=True)
    out = kl_hinge(kl, mask)  # mean KL 3e-4 > delta 1e-4: 1e3 * 2e-4 * 3e-4 = 6e-5
    torch.testing.assert_close(out, torch.tensor(6e-5))
    out.backward()  # d / d kl_t = 1e3 * 2e-4 / 4 tokens = 0.05
    torch.testing.assert_close(kl.grad, torch.full((2, 2), 0.05))
    inside = kl_hinge(torch.full((2, 2), 5e-5, requires_grad=True), mask)
    assert float(inside.detach()) == 0.0


def test_knapsack_value_and_allocation():
    # N = 2, p = 0.5: (1 - 0.25 - 0.25) * 0.5 * 0.25 = 0.0625
    assert knapsack_value(2, 0.5) == pytest.approx(0.0625)
    p = torch.tensor([0.5, 0.0, 1.0, 0.9])
    # 4 spare rollouts: p = 0.5's marginal gains (0.031, 0.016, 0.0078, 0.0039) all beat p = 0.9's first (0.0008);
    # p in {0, 1} have value 0 -> (6, 2, 2, 2)
    assert knapsack_allocation(p, budget=12, n_min=2, n_max=6).tolist() == [6, 2, 2, 2]
    # budget 20: the DP also fills p = 0.9 to 6 (16 in all); the 4 left go to the unsolved prompt first -> (6, 6, 2, 6)
    assert knapsack_allocation(p, budget=20, n_min=2, n_max=6).tolist() == [6, 6, 2, 6]
    with pytest.raises(ValueError, match="budget"):
        knapsack_allocation(p, budget=4, n_min=2)


def test_gvm_allocation():
    # raw = G / sqrt(p + 1e-3 / p): p = 0.5, G = 1 -> 1 / sqrt(0.502) = 1.4114; p = 0.25, G = 2 -> 2 / sqrt(0.254)
    # = 3.9684; p = 0 or G = 0 -> 0. Budget 10: targets 2.62, 7.38 -> floors (2, 7), one left -> largest remainder
    n = gvm_allocation(torch.tensor([0.5, 0.0, 0.25, 1.0]), torch.tensor([1.0, 1.0, 2.0, 0.0]), budget=10)
    assert n.tolist() == [3, 0, 7, 0]
    assert gvm_allocation(torch.zeros(2), torch.ones(2), budget=5).tolist() == [0, 0]


def test_spo_prioritized_prompt_weights():
    # sqrt(v (1 - v)) + 0.05: v = 0.5 -> 0.55, v = 0 -> 0.05, v = 1 -> 0.05; normalised by 0.65
    w = prioritized_prompt_weights(torch.tensor([0.5, 0.0, 1.0]))
    torch.testing.assert_close(w, torch.tensor([0.55, 0.05, 0.05]) / 0.65)
