"""Advantage estimators against hand-derived numbers and a slow per-group loop. Run: pytest tests/grpo -q"""

import math

import pytest
import torch

from flowrl.grpo import batch_std, group_advantages, group_stats, rloo_advantages


def test_group_scale_hand_derived():
    # group 0 = [1, 2]: mean 1.5, unbiased std sqrt((0.25 + 0.25) / 1) = sqrt(0.5)
    r, g = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0, 0, 1, 1])
    a = 0.5 / (math.sqrt(0.5) + 1e-4)
    torch.testing.assert_close(group_advantages(r, g), torch.tensor([-a, a, -a, a]), atol=1e-6, rtol=0)


def test_batch_and_none_scales_hand_derived():
    r, g = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0, 0, 1, 1])
    # batch std of 1..4 (unbiased) = sqrt(((1.5^2 + 0.5^2) * 2) / 3) = sqrt(5 / 3); means stay per group
    s = math.sqrt(5 / 3)
    expected = torch.tensor([-0.5, 0.5, -0.5, 0.5]) / (s + 1e-4)
    torch.testing.assert_close(group_advantages(r, g, scale="batch"), expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(group_advantages(r, g, scale="none"), torch.tensor([-0.5, 0.5, -0.5, 0.5]))


def test_biased_std_is_numpys():
    # one group [1, 2, 3, 4]: mean 2.5; np.std (biased) = sqrt(5 / 4) = 1.118034, torch's unbiased = sqrt(5 / 3)
    # = 1.290994; A(1) = -1.5 / std: -1.341641 (flow_grpo, TempFlow) vs -1.161895 (ratio sqrt(3 / 4) = 0.866)
    r, g = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.zeros(4, dtype=torch.long)
    biased = group_advantages(r, g, eps=0.0, unbiased=False)
    unbiased = group_advantages(r, g, eps=0.0)
    assert biased[0].item() == pytest.approx(-1.341641, abs=1e-6)
    assert unbiased[0].item() == pytest.approx(-1.161895, abs=1e-6)
    assert group_stats(r, g, unbiased=False).std[0].item() == pytest.approx(math.sqrt(1.25), abs=1e-6)


def test_global_std_by_hand():
    # flow_grpo PerPromptStatTracker(global_std=True): groups [1, 3] and [2, 6], per-prompt means 2 and 4, the std
    # over ALL rewards np.std([1, 3, 2, 6]) = sqrt((4 + 0 + 1 + 9) / 4) = 1.870829, eps 1e-4:
    # A = [-1, 1, -2, 2] / 1.870929
    r, g = torch.tensor([1.0, 3.0, 2.0, 6.0]), torch.tensor([0, 0, 1, 1])
    expected = torch.tensor([-1.0, 1.0, -2.0, 2.0]) / (math.sqrt(3.5) + 1e-4)
    torch.testing.assert_close(group_advantages(r, g, scale="batch", unbiased=False), expected)
    assert batch_std(r, unbiased=False) == pytest.approx(math.sqrt(3.5))
    # the batch spread over processes: each holds one group, the std is passed in
    first = group_advantages(r[:2], g[:2], scale="batch", batch_std=math.sqrt(3.5))
    torch.testing.assert_close(first, expected[:2])


def test_clip_and_singleton_group():
    # group 7 = [0, 0, 0, 10]: mean 2.5, std sqrt((3 * 2.5^2 + 7.5^2) / 3) = 5; last A = 7.5 / 5 = 1.5 -> clip 1
    r = torch.tensor([0.0, 0.0, 0.0, 10.0, 42.0])
    g = torch.tensor([7, 7, 7, 7, -3])  # -3 is a singleton group: its advantage is 0
    adv = group_advantages(r, g, eps=0.0, clip=1.0)
    torch.testing.assert_close(adv, torch.tensor([-0.5, -0.5, -0.5, 1.0, 0.0]))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_matches_slow_loop(seed, scale):
    gen = torch.Generator().manual_seed(seed)
    r = torch.randn(40, generator=gen)
    g = torch.randint(0, 7, (40,), generator=gen) * 13  # non-contiguous, unequal groups
    expected = torch.empty(40)
    batch_std = r.std().item()
    for i in range(40):
        members = [r[j].item() for j in range(40) if g[j] == g[i]]
        mean = sum(members) / len(members)
        std = math.sqrt(sum((m - mean) ** 2 for m in members) / max(len(members) - 1, 1))
        denom = {"group": std + 1e-4, "batch": batch_std + 1e-4, "none": 1.0}[scale]
        expected[i] = (r[i].item() - mean) / denom
    torch.testing.assert_close(group_advantages(r, g, scale=scale), expected, atol=1e-5, rtol=1e-5)


def test_group_stats_counts():
    stats = group_stats(torch.tensor([1.0, 5.0, 3.0]), torch.tensor([2, 9, 2]))
    torch.testing.assert_close(stats.count, torch.tensor([2.0, 1.0, 2.0]))
    torch.testing.assert_close(stats.mean, torch.tensor([2.0, 5.0, 2.0]))


def test_rloo_hand_derived():
    # group [1, 2, 4]: A_0 = 1 - (2 + 4) / 2 = -2, A_1 = 2 - 2.5 = -0.5, A_2 = 4 - 1.5 = 2.5; singleton -> 0
    adv = rloo_advantages(torch.tensor([1.0, 2.0, 4.0, 9.0]), torch.tensor([0, 0, 0, 1]))
    torch.testing.assert_close(adv, torch.tensor([-2.0, -0.5, 2.5, 0.0]))


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="Valid: \\['batch', 'group', 'none'\\]"):
        group_advantages(torch.ones(2), torch.zeros(2, dtype=torch.long), scale="prompt")
    with pytest.raises(ValueError, match="same shape"):
        group_advantages(torch.ones(2, 3), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        group_advantages(torch.ones(2), torch.zeros(2))


def test_clip_and_broadcast_advantages():
    from flowrl.grpo import broadcast_advantages, clip_advantages

    torch.testing.assert_close(
        clip_advantages(torch.tensor([-7.0, 0.5, 9.0]), max_abs=5.0), torch.tensor([-5.0, 0.5, 5.0])
    )
    mask = torch.ones(2, 3)
    assert broadcast_advantages(torch.tensor([1.0, -2.0]), mask).tolist() == [[1.0] * 3, [-2.0] * 3]
    per_edge = torch.arange(6.0).reshape(2, 3)
    assert torch.equal(broadcast_advantages(per_edge, mask), per_edge)
    with pytest.raises(ValueError, match=r"\(B,\) per sample or \(B, T\) per edge"):
        broadcast_advantages(torch.ones(3), mask)
