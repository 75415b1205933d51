"""TP-GRPO (thought-level process rewards, capability-adaptive weights) and the multi-objective weighted reward on
hand-made tensors; expected values derived in the comments. Run: pytest tests/grpo/test_llm_variants_process.py -q"""

import math

import pytest
import torch

from flowrl.grpo.reward_weights import multi_objective_rewards
from flowrl.grpo.thoughts import (
    capability_weights,
    group_accuracy,
    thought_rewards,
    thought_segments,
    tp_grpo_advantages,
)
from flowrl.grpo.variants import VARIANTS

# row 0: steps judged right, right, wrong, wrong, right, then padding; row 1: wrong, right, right, then padding
STEPS = torch.tensor([[1, 1, 0, 0, 1, 0], [0, 1, 1, 0, 0, 0]])
MASK = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]])


def test_tp_grpo_merges_contiguous_equal_steps_into_thoughts():
    th = thought_segments(STEPS, MASK)
    # row 0: runs (1, 1) (0, 0) (1) -> thoughts 0, 0, 1, 1, 2; row 1: runs (0) (1, 1) -> 0, 1, 1
    assert th.ids.tolist() == [[0, 0, 1, 1, 2, -1], [0, 1, 1, -1, -1, -1]]
    assert th.count.tolist() == [3, 2]
    assert th.correct.tolist() == [[True, True, False, False, True, False], [False, True, True, False, False, False]]
    # a padding gap does not split a thought, and padding labels never count
    gap = thought_segments(torch.tensor([[1, 1, 1]]), torch.tensor([[1, 0, 1]]))
    assert gap.ids.tolist() == [[0, -1, 0]] and gap.count.tolist() == [1]
    with pytest.raises(ValueError, match="same"):
        thought_segments(STEPS, MASK[:, :3])


def test_tp_grpo_capability_adaptive_thought_rewards():
    th = thought_segments(STEPS, MASK)
    # row 0 solved by 1 of 4 samples (p = 0.25): right thoughts earn 1 - p = 0.75, wrong ones cost p = 0.25
    # row 1 solved always (p = 1): right thoughts earn 0, wrong ones cost 1
    r = thought_rewards(th, torch.tensor([0.25, 1.0]))
    expected = [[0.75, 0.75, -0.25, -0.25, 0.75, 0.0], [-1.0, 0.0, 0.0, 0.0, 0.0, 0.0]]
    torch.testing.assert_close(r, torch.tensor(expected))
    # the adaptive rule: as proficiency rises, a correct thought earns less and a wrong one costs more
    w_plus, w_minus = capability_weights(torch.tensor([0.0, 0.5, 1.0]))
    assert w_plus.tolist() == [1.0, 0.5, 0.0] and w_minus.tolist() == [0.0, 0.5, 1.0]
    # the weight function is a hook: a constant +1 / -1 turns the rule into a plain (non-adaptive) process reward
    flat = thought_rewards(th, torch.tensor([0.25, 1.0]), weights=lambda p: (torch.ones_like(p), torch.ones_like(p)))
    torch.testing.assert_close(flat, torch.tensor([[1.0, 1, -1, -1, 1, 0], [-1, 1, 1, 0, 0, 0]]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        thought_rewards(th, torch.tensor([1.5, 0.0]))


def test_tp_grpo_token_advantages_add_the_process_reward_to_the_outcome_advantage():
    outcome = torch.tensor([1.0, 0.0, 0.0, 0.0])
    groups = torch.tensor([0, 0, 0, 0])
    assert group_accuracy(outcome, groups).tolist() == [0.25] * 4
    steps = torch.tensor([[1, 1], [1, 0], [0, 0], [1, 1]])
    mask = torch.tensor([[1, 1], [1, 1], [1, 0], [1, 1]])
    process = thought_rewards(thought_segments(steps, mask), group_accuracy(outcome, groups))
    adv = tp_grpo_advantages(outcome, groups, process, mask, process_weight=0.5)
    # outcome advantage: mean 0.25, unbiased std sqrt(((0.75)^2 + 3 (0.25)^2) / 3) = 0.5 -> (1.5, -0.5, -0.5, -0.5)
    # (the std has eps 1e-4 added); process: right thoughts +0.75, wrong ones -0.25, times lambda = 0.5
    a = [1.5 * 0.5 / (0.5 + 1e-4), -0.5 * 0.5 / (0.5 + 1e-4)]
    expected = [
        [a[0] + 0.375, a[0] + 0.375],
        [a[1] + 0.375, a[1] - 0.125],
        [a[1] - 0.125, 0.0],
        [a[1] + 0.375, a[1] + 0.375],
    ]
    torch.testing.assert_close(adv, torch.tensor(expected))
    # a failed sample's correct partial reasoning now outranks its wrong one: the row-1 tokens differ by lambda (1-p+p)
    assert adv[1, 0] - adv[1, 1] == pytest.approx(0.5)


def test_multi_objective_weighted_reward():
    # heads (e.g. politeness, meaningfulness, actionability, safety); the second sample's safety head is NaN
    scores = torch.tensor([[1.0, 0.5, 0.0, 1.0], [0.0, 1.0, 1.0, math.nan]])
    w = torch.tensor([0.4, 0.2, 0.2, 0.2])
    # 0.4 + 0.1 + 0 + 0.2 = 0.7; 0 + 0.2 + 0.2 (the NaN head skipped) = 0.4
    torch.testing.assert_close(multi_objective_rewards(scores, weights=w), torch.tensor([0.7, 0.4]))
    # all heads NaN: unscorable (NaN), as the core's weighted sum
    assert math.isnan(float(multi_objective_rewards(torch.full((1, 4), math.nan), weights=w)[0]))
    with pytest.raises(ValueError, match="non-negative"):
        multi_objective_rewards(scores, weights=torch.tensor([1.0, -1.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="non-negative"):
        multi_objective_rewards(scores, weights=torch.zeros(4))
    with pytest.raises(ValueError, match="shape"):
        multi_objective_rewards(scores, weights=torch.ones(3))


def test_tp_grpo_and_mo_grpo_are_named_variants():
    assert {"tp_grpo", "mo_grpo"} <= set(VARIANTS)
    # the outcome part of TP-GRPO is the GRPO group advantage: mean 0.5, unbiased std sqrt(0.5), eps 1e-4
    adv = VARIANTS["tp_grpo"]().advantages(torch.tensor([1.0, 0.0]), torch.tensor([0, 0]))
    torch.testing.assert_close(adv, torch.tensor([0.5, -0.5]) / (math.sqrt(0.5) + 1e-4))
