"""RiskPO, Posterior-GRPO, TW-GRPO and dynamic reward weighting on hand-made tensors; expected values derived in
the comments. Run: pytest tests/grpo/test_llm_variants_rewards.py -q"""

import math

import pytest
import torch

from flowrl.grpo.advantages_llm import bundle_paper_ids, mvar_advantages, riskpo_advantages
from flowrl.grpo.reward_weights import gradient_influence, hypervolume_meta_reward, mirror_descent_weights
from flowrl.grpo.shaping import posterior_rewards, soft_choice_rewards
from flowrl.grpo.trackers import DynamicRewardWeights, QuantileTracker
from flowrl.grpo.weights_llm import group_kl_token_weights


def test_riskpo_papers_and_mvar():
    ids = torch.tensor([4, 4, 4, 9, 9, 9])
    # one bundle (2 questions <= 5); paper j = the j-th response of each question
    assert bundle_paper_ids(ids, bundle_size=5).tolist() == [0, 1, 2, 0, 1, 2]
    assert bundle_paper_ids(ids, bundle_size=1).tolist() == [0, 1, 2, 3, 4, 5]
    rewards = torch.tensor([1.0, 0, 1, 1, 0, 0])
    # S = (2, 0, 1); q_a = 0.5, q_b = 1.5 given; A_R = (clip(S) - 1.5) / 0.6 = (0, -5/3, -5/6)
    # A_C = -max(0.5 - S, 0) / 0.2 = (0, -2.5, 0); (1.5 A_C + A_R) / 2.5 = (0, -13/6, -1/3); std(S) = 1
    adv = mvar_advantages(rewards, bundle_paper_ids(ids, bundle_size=5), q_low=0.5, q_high=1.5, eps=0.0)
    per_paper = [0.0, -13 / 6, -1 / 3]
    torch.testing.assert_close(adv, torch.tensor(per_paper * 2))
    # batch quantiles of (0, 1, 2): Q_0.2 = 0.4, Q_0.8 = 1.6 (linear interpolation)
    tracker = QuantileTracker()
    assert tracker.update(torch.tensor([2.0, 0, 1])) == pytest.approx((0.4, 1.6))
    assert tracker.update(torch.tensor([3.0, 1, 2])) == pytest.approx((0.9 * 0.4 + 0.1 * 1.4, 0.9 * 1.6 + 0.1 * 2.6))
    assert riskpo_advantages(rewards, ids).shape == (6,)
    with pytest.raises(ValueError, match="alpha"):
        mvar_advantages(rewards, ids, alpha=0.9, beta=0.8)


def _rule_based_thinking_score(texts: list[str]) -> torch.Tensor:
    """A stand-in process scorer: the fraction of '=' steps whose arithmetic is right (e.g. '2+3=5')."""
    scores = []
    for text in texts:
        steps = [s for s in text.split(";") if "=" in s]
        ok = [eval(s.split("=")[0]) == int(s.split("=")[1]) for s in steps]  # noqa: S307 - fixed test strings
        scores.append(sum(ok) / len(ok) if ok else 0.0)
    return torch.tensor(scores)


def test_posterior_grpo_gates_the_thinking_reward_on_the_outcome():
    texts = ["2+3=5;5*2=10", "2+3=6;6*2=12", "2+3=5;5*2=11"]
    thinking = _rule_based_thinking_score(texts)  # (1, 0.5, 0.5)
    outcome = torch.tensor([1.0, 1.0, 0.0])
    fmt = torch.tensor([0.5, 0.5, 0.5])
    # R = f + o + o t = (0.5 + 1 + 1, 0.5 + 1 + 0.5, 0.5 + 0 + 0)
    torch.testing.assert_close(posterior_rewards(fmt, outcome, thinking), torch.tensor([2.5, 2.0, 0.5]))
    with pytest.raises(ValueError, match="thinking"):
        posterior_rewards(fmt, outcome, torch.tensor([2.0, 0, 0]))


def test_tw_grpo_soft_choice_reward():
    out = soft_choice_rewards([{"A", "B"}, {"A"}, {"A", "C"}, set()], [{"A", "B"}] * 4)
    torch.testing.assert_close(out, torch.tensor([1.0, 0.5, 0.0, 0.0]))


def test_tw_grpo_token_weights():
    # group of 2, V = 2: t0 both (0.5, 0.5) -> d = 0 -> D_0 = 0; t1 (0.9, 0.1) vs (0.1, 0.9): d = +-ln 3 per item,
    # sum_v e^d - d - 1 = 1/3 + 3 - 2 = 4/3 for each member -> D = (0, 4/3) -> norm (0, 1) -> w = (1, 1.4)
    lp = torch.log(torch.tensor([[[0.5, 0.5], [0.9, 0.1]], [[0.5, 0.5], [0.1, 0.9]]]))
    w = group_kl_token_weights(lp, torch.ones(2, 2), torch.zeros(2, dtype=torch.long))
    torch.testing.assert_close(w, torch.tensor([[1.0, 1.4], [1.0, 1.4]]))
    # a member that ended at t0 is uniform at t1 (0.5, 0.5): d vs mean of log(0.9, 0.1) and log(0.5, 0.5) is still > 0
    w = group_kl_token_weights(lp, torch.tensor([[1.0, 1.0], [1.0, 0.0]]), torch.zeros(2, dtype=torch.long))
    assert w[0, 0] == 1.0 and w[0, 1] == pytest.approx(1.4)


def test_dynamic_reward_weighting():
    grads = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])
    # Gram rows: g0: <g0,g0> 1 + <g0,g1> 1 + <g0,g2> -1 = 1 ; g1: 1 + 2 - 1 = 2 ; g2: -1 - 1 + 1 = -1
    torch.testing.assert_close(gradient_influence(grads), torch.tensor([1.0, 2.0, -1.0]))
    w = mirror_descent_weights(torch.full((3,), 1 / 3), torch.tensor([1.0, 2.0, -1.0]), lr=1.0)
    expected = torch.softmax(torch.tensor([1.0, 2.0, -1.0]), 0)  # uniform prior cancels in the softmax
    torch.testing.assert_close(w, expected)
    tracker = DynamicRewardWeights(3, lr=1.0, every=2)
    assert torch.equal(tracker.update(grads), torch.full((3,), 1 / 3))  # not yet: every = 2
    torch.testing.assert_close(tracker.update(grads), torch.softmax(torch.tensor([2.0, 4.0, -2.0]), 0))
    assert hypervolume_meta_reward(0.0) == 0.5 and hypervolume_meta_reward(100.0) == pytest.approx(2.0)
    assert math.isclose(float(w.sum()), 1.0, rel_tol=1e-6)
