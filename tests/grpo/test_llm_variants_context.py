"""Segment PO, Scaf-GRPO / Guide hints and the SALSA weight soup on hand-made tensors; expected values derived in
the comments. Run: pytest tests/grpo/test_llm_variants_context.py -q"""

import math

import pytest
import torch

from flowrl.grpo.hints import failed_groups, guided_old_logp, replace_failed
from flowrl.grpo.schedules import HintPlanner
from flowrl.grpo.segments import cutpoint_segments, probability_mask, segment_advantages
from flowrl.grpo.soup import weight_soup


def test_segment_po_chain():
    probs = torch.tensor([[0.95, 0.5, 0.99, 0.3, 0.2, 0.97, 0.1]])
    mask = torch.tensor([[1.0, 1, 1, 1, 1, 1, 0]])
    seg = cutpoint_segments(probs.log(), mask, prob_threshold=0.9, interval=2)
    # cutpoints (p < 0.9, on the mask): t = 1, 3, 4; the 2nd cutpoint (t = 3) opens segment 1 -> ids 0 0 0 1 1 1, -1
    assert seg.cutpoints.tolist() == [[False, True, False, True, True, False, False]]
    assert seg.ids.tolist() == [[0, 0, 0, 1, 1, 1, -1]] and seg.count.tolist() == [2]
    # V(s_0) = 0.5, V(s_1) = 0.8, reward 1.0 -> A = 0.3 on segment 0, 0.2 on segment 1
    adv = segment_advantages(torch.tensor([[0.5, 0.8, 1.0]]), seg)
    torch.testing.assert_close(adv, torch.tensor([[0.3, 0.3, 0.3, 0.2, 0.2, 0.2, 0.0]]))
    assert probability_mask(seg, mask).tolist() == [[0, 1, 0, 1, 1, 0, 0]]
    with pytest.raises(ValueError, match="segments"):
        segment_advantages(torch.tensor([[0.5, 0.8]]), seg)


def test_scaf_grpo_true_hard_groups_and_replacement():
    rewards = torch.tensor([0.0, 0, 0, 1, 0, 0])
    ids = torch.tensor([0, 0, 0, 1, 1, 1])
    assert failed_groups(rewards, ids).tolist() == [True] * 3 + [False] * 3
    # guided rollouts for group 0: the first fails, the second succeeds -> it replaces row 0 (first failed row)
    out = replace_failed(rewards, ids, torch.tensor([0.0, 1.0, 1.0]), torch.tensor([0, 0, 0]))
    assert out.tolist() == [1, -1, -1, -1, -1, -1]


def test_scaf_grpo_hint_tiers():
    planner = HintPlanner(exemption_steps=10)
    assert planner.tiers_to_try(7, step=3) == ()  # guidance-exemption phase
    assert planner.tiers_to_try(7, step=10) == ("knowledge", "planning", "solution")
    planner.report(7, "planning")  # planning hints worked: start there next time
    assert planner.tiers_to_try(7, step=11) == ("planning", "solution")


def test_guide_ratio_uses_the_hinted_old_policy():
    plain = torch.log(torch.tensor([[0.2, 0.4], [0.2, 0.4]]))
    hinted = torch.log(torch.tensor([[0.8, 0.5], [0.8, 0.5]]))
    old = guided_old_logp(plain, hinted, torch.tensor([True, False]))
    # guided row: r = pi_theta(o | q) / pi_old(o | q, h); with pi_theta = plain, r = (0.25, 0.8); unguided r = 1
    ratio = (plain - old).exp()
    torch.testing.assert_close(ratio, torch.tensor([[0.25, 0.8], [1.0, 1.0]]))


def test_salsa_weight_soup():
    a = {"w": torch.tensor([1.0, 3.0]), "step": torch.tensor(5)}
    b = {"w": torch.tensor([3.0, 5.0]), "step": torch.tensor(9)}
    soup = weight_soup([a, b])  # (a + b) / 2 = (2, 4); integer buffers from the first model
    torch.testing.assert_close(soup["w"], torch.tensor([2.0, 4.0]))
    assert int(soup["step"]) == 5
    torch.testing.assert_close(weight_soup([a, b], weights=[0.25, 0.75])["w"], torch.tensor([2.5, 4.5]))
    with pytest.raises(ValueError, match="sum"):
        weight_soup([a, b], weights=[0.5, 0.6])
    with pytest.raises(ValueError, match="two"):
        weight_soup([a])
    assert math.isfinite(float(soup["w"].sum()))
