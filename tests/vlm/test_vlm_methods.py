"""The multimodal GRPO methods' defining equations against hand-computed cases."""

import torch

from flowrl.grpo.consistency import consistency_bonus, ema_update
from flowrl.grpo.reg_grpo import reg_grpo_loss, reg_grpo_targets
from flowrl.grpo.vade import beta_update, decay_to_prior, thompson_scores, thompson_select
from flowrl.grpo.variance_sampling import (
    outcome_variance,
    trajectory_diversity,
    variance_promotion_score,
    vas_probabilities,
)
from flowrl.grpo.weights_llm import group_kl_token_weights


def test_vps_by_hand():
    # pass rates 1/4, 1, 1/2 -> OVS 3/16, 0, 1/4
    correct = torch.tensor([[1, 0, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0]])
    torch.testing.assert_close(outcome_variance(correct), torch.tensor([3 / 16, 0.0, 0.25]))
    # group 0: two identical rollouts -> 0; group 1: [1,2,3] vs [1,2,4]: bigrams {12,23} vs {12,24}: 1 - 1/3
    tds = trajectory_diversity([[[1, 2, 3], [1, 2, 3]], [[1, 2, 3], [1, 2, 4]], [[5, 6], [7, 8]]])
    torch.testing.assert_close(tds, torch.tensor([0.0, 2 / 3, 1.0]))
    vps = variance_promotion_score(torch.tensor([3 / 16, 0.0, 0.25]), tds, alpha=2.0, beta=0.5)
    torch.testing.assert_close(vps, torch.tensor([0.375, 1 / 3, 1.0]))
    # lam 0.5: 0.5 * vps / sum + 0.5 / 3, sum = 0.375 + 1/3 + 1 = 1.708333
    p = vas_probabilities(vps, lam=0.5)
    expect = 0.5 * vps / vps.sum() + 0.5 / 3
    torch.testing.assert_close(p, expect)
    torch.testing.assert_close(p.sum(), torch.tensor(1.0))
    torch.testing.assert_close(vas_probabilities(torch.zeros(4)), torch.full((4,), 0.25))


def test_beta_updates_and_decay_by_hand():
    a, b = beta_update(
        torch.tensor([1.0, 2.0]), torch.tensor([1.0, 3.0]), torch.tensor([3.0, 0.5]), torch.tensor([4.0, 4.0])
    )
    torch.testing.assert_close(a, torch.tensor([4.0, 2.5]))
    torch.testing.assert_close(b, torch.tensor([2.0, 6.5]))
    # prior (1, 1): a 4 -> 1 + 0.5 * 3 = 2.5 (fast, recent); 2.5 -> 1 + 0.9 * 1.5 = 2.35 (slow)
    a2, b2 = decay_to_prior(a, b, torch.tensor([True, False]), gamma_fast=0.5, gamma_slow=0.9)
    torch.testing.assert_close(a2, torch.tensor([2.5, 2.35]))
    torch.testing.assert_close(b2, torch.tensor([1.5, 1 + 0.9 * 5.5]))


def test_thompson_sampler_prefers_uncertain_middle_difficulty():
    # a near-certain easy sample (Beta(200, 2)), a hard one (Beta(2, 200)), a 50/50 one (Beta(50, 50))
    a, b = torch.tensor([200.0, 2.0, 50.0]), torch.tensor([2.0, 200.0, 50.0])
    scores = torch.stack([thompson_scores(a, b, generator=torch.Generator().manual_seed(s)) for s in range(200)])
    # E[p(1-p)] under Beta(a, b) = ab / ((a+b)(a+b+1)): 0.0097, 0.0097, 0.2475
    expect = a * b / ((a + b) * (a + b + 1))
    torch.testing.assert_close(scores.mean(0), expect, atol=3e-3, rtol=0.05)
    assert thompson_select(a, b, 1, generator=torch.Generator().manual_seed(0)).tolist() == [2]


def test_consistency_bonus_by_hand():
    # group 0: correct rows 0, 1, 2 with likelihoods .9 .3 .6 (mean .6) -> rows 0 and 2; row 3 wrong -> 0
    # group 1: one correct row -> its own mean -> bonus
    correct = torch.tensor([1, 1, 1, 0, 0, 1])
    like = torch.tensor([0.9, 0.3, 0.6, 0.99, 0.2, 0.1])
    groups = torch.tensor([0, 0, 0, 0, 1, 1])
    torch.testing.assert_close(
        consistency_bonus(correct, like, groups, lam=0.5), torch.tensor([0.5, 0.0, 0.5, 0.0, 0.0, 0.5])
    )
    ref, pol = torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
    ref.weight.data.fill_(1.0)
    pol.weight.data.fill_(3.0)
    ema_update(ref, pol, momentum=0.9)  # 0.9 * 1 + 0.1 * 3 = 1.2
    torch.testing.assert_close(ref.weight.data, torch.tensor([[1.2]]))


def test_reg_grpo_target_and_gradient_by_hand():
    logp = torch.tensor([[-1.0, -2.0], [-1.5, -0.5], [-3.0, 0.0]], requires_grad=True)
    old = torch.tensor([[-1.0, -2.5], [-1.0, -0.5], [-3.0, -1.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])  # row 2's second token is padding
    groups = torch.tensor([0, 0, 1])
    # l = [0.5, -0.5, 0.0]; group 0 mean 0 -> [0.5, -0.5]; group 1 alone -> 0; beta 0.5 doubles
    torch.testing.assert_close(reg_grpo_targets(logp, old, mask, groups, beta=0.5), torch.tensor([1.0, -1.0, 0.0]))
    adv = torch.tensor([1.0, -1.0, 0.0])
    assert float(reg_grpo_loss(logp, old, adv, mask, groups, beta=0.5)) == 0.0  # the target is met
    loss = reg_grpo_loss(logp, old.clone(), torch.tensor([2.0, -2.0, 0.0]), mask, groups, beta=0.5)
    loss.backward()
    # residuals e = A - A_hat = [1, -1, 0]; dL/dl_0 = mean over 3 of -2 e * d(A_hat)/dl: -2/3 * (e0 - e1)/2 / 0.5
    g0 = -2 / 3 * ((1.0 - (-1.0)) / 2) / 0.5
    torch.testing.assert_close(logp.grad[0], torch.tensor([g0, g0]))
    torch.testing.assert_close(logp.grad[2], torch.tensor([0.0, 0.0]))


def test_tw_grpo_token_weights_by_hand():
    # one group of 2, vocab 2: position 0 identical distributions (D = 0), position 1 different -> weight alpha
    lp = torch.log(torch.tensor([[[0.5, 0.5], [0.9, 0.1]], [[0.5, 0.5], [0.1, 0.9]]]))
    w = group_kl_token_weights(lp, torch.ones(2, 2), torch.tensor([0, 0]), alpha=1.4)
    torch.testing.assert_close(w, torch.tensor([[1.0, 1.4], [1.0, 1.4]]))
