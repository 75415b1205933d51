"""The LLM GRPO variants' defining rules on hand-made tensors; expected values derived in the comments.

Run: pytest tests/grpo/test_llm_variants.py -q
"""

import itertools
import math

import pytest
import torch

from flowrl.grpo import PolicyBatch, Variant, get_variant, normalizer, policy_loss
from flowrl.grpo.advantages_llm import (
    baseline_advantages,
    entropy_shaped_advantages,
    smooth_advantages,
    virtual_max_advantages,
)
from flowrl.grpo.regularizers import llds_penalty, masked_teacher_kl
from flowrl.grpo.schedules import ExponentialBudget, LinearSchedule
from flowrl.grpo.selection import adv_entropy_token_mask, max_variance_subset_mask
from flowrl.grpo.shaping import budget_rewards, grpo_lambda_rewards, unlikeliness_rewards
from flowrl.grpo.surrogates_llm import dcpo_bounds, dcpo_surrogate
from flowrl.grpo.trackers import BetaValueTracker, CumulativeRewardStats
from flowrl.grpo.variants_llm import LLM_VARIANTS, d3s, grpo_d_schedule, ngrpo, with_beta
from flowrl.grpo.weights_llm import conflict_token_weights

# ------------------------------------------------------------------------------------------------------ NGRPO


def test_ngrpo_all_wrong_group_of_8_gets_minus_one_third():
    # R = 8 zeros + virtual 1: mu' = 1/9; sum sq dev = 8 (1/9)^2 + (8/9)^2 = 72/81; var' = (72/81)/8 = 1/9
    # -> sigma' = 1/3; A = (0 - 1/9) / (1/3) = -1/3 = -1/sqrt(G + 1)
    adv = virtual_max_advantages(torch.zeros(8), torch.zeros(8, dtype=torch.long), eps=0.0)
    torch.testing.assert_close(adv, torch.full((8,), -1 / 3))


def test_ngrpo_all_correct_zero_and_mixed_group():
    ids = torch.tensor([0, 0, 0, 0, 1, 1])
    adv = virtual_max_advantages(torch.tensor([1.0, 0, 0, 0, 1, 1]), ids, eps=0.0)
    # group 0: {1, 0, 0, 0, 1v}: mu' = 2/5; sq dev = 2 (0.6)^2 + 3 (0.4)^2 = 1.2; var' = 1.2 / 4 = 0.3
    s = math.sqrt(0.3)
    torch.testing.assert_close(adv[:4], torch.tensor([0.6 / s, -0.4 / s, -0.4 / s, -0.4 / s]))
    # group 1 all correct: mu' = 1, sigma' = 0 -> A = 0 / (0 + eps) = 0
    torch.testing.assert_close(adv[4:], torch.zeros(2))


def test_ngrpo_asymmetric_clip():
    # r = 1.3, A = +1: -min(1.3, 1.24) = -1.24 ; r = 0.8, A = -1: -min(-0.8, -0.84) = 0.84
    variant = ngrpo()
    log_ratio = torch.log(torch.tensor([[1.3, 0.8]]))
    loss, _ = variant.objective.surrogate(log_ratio, torch.tensor([[1.0, -1.0]]), torch.zeros(1, 2))
    torch.testing.assert_close(loss, torch.tensor([[-1.24, 0.84]]))


# ------------------------------------------------------------------------------------------------------- DCPO


def test_dcpo_bounds():
    q = torch.tensor([1.0, 0.5, 1e-4])
    lo, hi = dcpo_bounds(q, eps_low=0.16, eps_high=0.2, max_upper=10.0)
    # q = 1: 0.5 + 0.5 sqrt(1 - 0.64) = 0.8 ; 0.5 + 0.5 sqrt(1.8)
    # q = 0.5: 4 * 0.16 / 0.5 = 1.28 > 1 -> lower 0.5 ; 0.5 + 0.5 sqrt(1 + 1.6)
    # q = 1e-4: upper 0.5 + 0.5 sqrt(8001) = 45.2 -> capped at 10
    torch.testing.assert_close(lo, torch.tensor([0.8, 0.5, 0.5]))
    torch.testing.assert_close(hi, torch.tensor([0.5 + 0.5 * math.sqrt(1.8), 0.5 + 0.5 * math.sqrt(2.6), 10.0]))


def test_dcpo_surrogate_uses_the_old_probability():
    # token with q = 0.5 (old_logp = log 0.5) and r = 1.5, A = +1: upper = 0.5 + 0.5 sqrt(2.6) = 1.3062 -> loss -1.3062
    # the same r at q = 1 is clipped at 0.5 + 0.5 sqrt(1.8) = 1.1708
    old = torch.log(torch.tensor([[0.5, 1.0]]))
    logp = old + math.log(1.5)
    loss, stats = dcpo_surrogate(logp - old, torch.ones(1, 2), logp)
    torch.testing.assert_close(loss, -torch.tensor([[0.5 + 0.5 * math.sqrt(2.6), 0.5 + 0.5 * math.sqrt(1.8)]]))
    assert stats["clip_high"].tolist() == [[1.0, 1.0]]
    # dual clip for A < 0: r = 20 (q = 0.01) gives -min(-20, -upper) = 20 > c = 10 -> capped at 10
    old = torch.log(torch.tensor([[0.01]]))
    loss, _ = dcpo_surrogate(torch.log(torch.tensor([[20.0]])), -torch.ones(1, 1), old + math.log(20.0))
    torch.testing.assert_close(loss, torch.tensor([[10.0]]))


def test_dcpo_smooth_advantages_over_steps():
    tracker = CumulativeRewardStats()
    ids = torch.tensor([7, 7])
    # step 1 (i = 1): A = A_tot = A_new = +-1/sqrt(2) (unbiased std of {1, 0} is sqrt(0.5))
    torch.testing.assert_close(tracker(torch.tensor([1.0, 0.0]), ids), torch.tensor([1, -1]) / math.sqrt(2))
    # step 2 rewards {1, 1}: m = 1, s = 0 -> A_new = 0; i = 2: mean = (0.5 + 1) / 2 = 0.75,
    # var = (1 * 0.5 + 0 + 1/2 * 0.5^2) / 2 = 0.3125; A_tot = 0.25 / sqrt(0.3125) = 0.4472; A1 = A2 = A_tot / 2
    # -> a constant group still learns from the prompt's history
    expected = 0.5 * 0.25 / math.sqrt(0.3125)
    torch.testing.assert_close(tracker(torch.tensor([1.0, 1.0]), ids), torch.tensor([expected, expected]))


def test_dcpo_smooth_advantages_picks_the_smaller_candidate():
    # i = 3, A_new = +-1/sqrt(2) = +-0.7071 (step {1, 0}), A_tot = (1 - 0.2, 0 - 0.2) / 1 = (0.8, -0.2):
    # r0: A1 = 0.8/3 + 2/3 0.7071 = 0.7381, A2 = 0.7071/3 + 2/3 0.8 = 0.7690 -> 0.7381
    # r1: A1 = -0.2/3 - 2/3 0.7071 = -0.5381, A2 = -0.7071/3 - 2/3 0.2 = -0.3690 -> -0.3690
    r = torch.tensor([1.0, 0.0])
    ids = torch.tensor([0, 0])
    a_new = 1 / math.sqrt(2)
    cum_mean, cum_std = torch.tensor([0.2, 0.2]), torch.tensor([1.0, 1.0])
    adv = smooth_advantages(r, ids, cum_mean=cum_mean, cum_std=cum_std, times_seen=torch.tensor([3.0, 3.0]))
    a1 = [0.8 / 3 + 2 / 3 * a_new, -0.2 / 3 - 2 / 3 * a_new]
    a2 = [a_new / 3 + 2 / 3 * 0.8, -a_new / 3 - 2 / 3 * 0.2]
    expected = [min(x, y, key=abs) for x, y in zip(a1, a2, strict=True)]  # (0.7381, -0.3690)
    torch.testing.assert_close(adv, torch.tensor(expected))
    with pytest.raises(ValueError, match="times_seen"):
        smooth_advantages(r, ids, cum_mean=cum_mean, cum_std=cum_std, times_seen=torch.zeros(2))


# ---------------------------------------------------------------------------------------------------- GRPO-D


def test_grpo_d_schedule_grows_linearly_then_stays():
    sched = grpo_d_schedule(total_steps=10, beta_min=0.0, beta_max=0.04)
    assert [sched(s) for s in (0, 5, 10, 20)] == pytest.approx([0.0, 0.02, 0.04, 0.04])
    anneal = LinearSchedule(5e-3, 1e-3, 4)  # KDRL: 5e-3 -> 1e-3
    assert anneal(2) == pytest.approx(3e-3)


def test_with_beta_adds_the_scheduled_kl():
    # loss = policy term + beta * seq-mean-token-mean(kl); on-policy with A = 0 the policy term is 0 -> beta * 1
    variant = with_beta(get_variant("flowrl.grpo.variants_llm:grpo_d"), 0.02)
    mask = torch.ones(2, 3)
    logp = torch.zeros(2, 3, requires_grad=True)
    batch = PolicyBatch(logp, logp.detach(), torch.zeros(2), mask, kl=torch.ones(2, 3))
    loss, _ = policy_loss(variant.objective, batch, norm=normalizer(mask))
    torch.testing.assert_close(loss, torch.tensor(0.02))


# ------------------------------------------------------------------------------------------------------- D3S


def test_d3s_sample_level_keeps_the_max_variance_subset():
    adv = torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0, 0.5])
    ids = torch.zeros(6, dtype=torch.long)
    keep = max_variance_subset_mask(adv, ids, keep_ratio=0.5)  # k = 3
    # brute force over all C(6, 3) = 20 subsets: the maximiser is {-2, -1, 3} (population var 4.222)
    best = max(itertools.combinations(range(6), 3), key=lambda s: adv[list(s)].var(unbiased=False))
    assert sorted(torch.nonzero(keep).flatten().tolist()) == sorted(best) == [0, 1, 4]
    # the variant zeroes the advantages of the dropped samples
    out = d3s(keep_ratio=0.5).advantages(torch.tensor([0.0, 1, 1, 1, 0, 0, 0, 0]), torch.zeros(8, dtype=torch.long))
    assert int((out != 0).sum()) == 4


def test_d3s_token_level_keeps_top_abs_adv_times_entropy():
    adv = torch.tensor([2.0, -0.5])
    entropy = torch.tensor([[0.1, 1.0], [1.0, 3.0]])
    # scores |A| H: [[0.2, 2.0], [0.5, 1.5]] -> top half of 4 valid tokens = {2.0, 1.5}
    keep = adv_entropy_token_mask(adv, entropy, torch.ones(2, 2), keep_ratio=0.5)
    assert keep.tolist() == [[0.0, 1.0], [0.0, 1.0]]


# --------------------------------------------------------------------------------------------------- shaping


def test_grpo_lambda_length_penalty_only_on_the_top_groups():
    correct = torch.tensor([1.0, 1, 0, 1, 0, 0])
    lengths = torch.tensor([2.0, 4, 6, 3, 3, 3])
    ids = torch.tensor([0, 0, 0, 1, 1, 1])
    # c_q = 2/3 (group 0), 1/3 (group 1); top_fraction 0.5 -> ceil(0.5 * 2) = 1 group: group 0
    # group 0 lam = 0.5 - (L - 2) / 4 = (0.5, 0, -0.5): correct 1 + lam, wrong 0 + min(0, lam) -> (1.5, 1, -0.5)
    out = grpo_lambda_rewards(correct, lengths, ids, top_fraction=0.5)
    torch.testing.assert_close(out, torch.tensor([1.5, 1.0, -0.5, 1.0, 0.0, 0.0]))


def test_unlikeliness_penalises_likely_correct_samples():
    # seq logp (-1, -3, -2, -0.5) -> ranks (most likely = 1): (2, 4, 3, 1); G = 4, beta_rank 0.25
    # r = R (1 - 0.25 (4 - rank) / 4) = (0.875, 1, 0, 0.8125)
    out = unlikeliness_rewards(
        torch.tensor([1.0, 1, 0, 1]), torch.tensor([-1.0, -3, -2, -0.5]), torch.zeros(4, dtype=torch.long)
    )
    torch.testing.assert_close(out, torch.tensor([0.875, 1.0, 0.0, 0.8125]))


def test_train_long_think_short_budget_and_reward():
    budget = ExponentialBudget(initial=256, gamma=0.5, every=10)
    assert [budget(0), budget(9), budget(25)] == [256, 256, 64]  # 256 * 0.5^floor(25/10) = 64
    # c + 0.5 c clip(1 - L / 64, -1, 1): L 32 -> 1.25 ; L 128 -> 1 - 0.5 = 0.5 ; wrong -> 0
    out = budget_rewards(torch.tensor([1.0, 1, 0]), torch.tensor([32.0, 128, 10]), budget=64)
    torch.testing.assert_close(out, torch.tensor([1.25, 0.5, 0.0]))


# ------------------------------------------------------------------------------------------- regularisers


def test_kdrl_teacher_kl_masks_correct_responses():
    logp = torch.tensor([[-1.0, -2.0], [-1.0, -2.0]], requires_grad=True)
    teacher = torch.tensor([[-1.5, -1.0], [-1.5, -1.0]])
    term = masked_teacher_kl(logp, teacher, torch.tensor([0.0, 1.0]))
    # row 0 (wrong): (0.5^2 / 2, 1 / 2) = (0.125, 0.5); row 1 (correct): 0
    torch.testing.assert_close(term, torch.tensor([[0.125, 0.5], [0.0, 0.0]]))
    term.sum().backward()  # d k2 / d logp = logp - teacher = (0.5, -1)
    torch.testing.assert_close(logp.grad, torch.tensor([[0.5, -1.0], [0.0, 0.0]]))


def test_llds_protects_non_negative_responses_whose_likelihood_fell():
    old = torch.full((3, 2), -1.0)
    logp = torch.tensor([[-1.5, -0.8], [-1.1, -0.5], [-1.5, -1.5]])
    # row 0: drop (0.5, -0.2), sum 0.3 > 0, A >= 0 -> (0.5, 0); row 1: sum -0.4 -> gate 0; row 2: A < 0 -> 0
    term = llds_penalty(logp, old, torch.tensor([1.0, 1.0, -1.0]), torch.ones(3, 2))
    torch.testing.assert_close(term, torch.tensor([[0.5, 0.0], [0.0, 0.0], [0.0, 0.0]]))


# -------------------------------------------------------------------------------------------------------- SPO


def test_spo_tracker_and_global_normalisation():
    tracker = BetaValueTracker()
    keys = torch.tensor([0, 1])
    assert tracker.values(keys).tolist() == [0.5, 0.5]  # prior Beta(1, 1)
    # key 0: D = 0 -> rho = clip(1, 0.875, 0.96) = 0.96: a = 0.96 + 1, b = 0.96 -> v = 1.96 / 2.92
    # key 1: D = 0.12 -> 2^-2 = 0.25 -> rho = 0.875: a = 0.875, b = 0.875 + 1 -> v = 0.875 / 2.75
    tracker.update(keys, torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.12]))
    torch.testing.assert_close(tracker.values(keys), torch.tensor([1.96 / 2.92, 0.875 / 2.75]))
    # residuals (0.5, -0.5, 0.75): mean 0.25, unbiased var (0.0625 + 0.5625 + 0.25) / 2 = 0.4375
    adv = baseline_advantages(torch.tensor([1.0, 0, 1]), torch.tensor([0.5, 0.5, 0.25]), eps=0.0)
    torch.testing.assert_close(adv, torch.tensor([0.5, -0.5, 0.75]) / math.sqrt(0.4375))


def test_spo_variant_uses_the_pre_update_value():
    variant = get_variant("flowrl.grpo.variants_llm:spo")
    ids = torch.tensor([3, 3])
    first = variant.advantages(torch.tensor([1.0, 0.0]), ids)  # v = 0.5 for both: residuals +-0.5, std sqrt(0.5)
    torch.testing.assert_close(first, torch.tensor([0.5, -0.5]) / (math.sqrt(0.5) + 1e-6))
    # two updates with rho 0.96: a = 0.96 (0.96 + 1) = 1.8816 ... the value moved, so the same rewards differ now
    second = variant.advantages(torch.tensor([1.0, 0.0]), ids)
    assert not torch.equal(first, second)


# ------------------------------------------------------------------------------------------------------- GTPO


def test_gtpo_conflict_weights_and_entropy_shaping():
    ids = torch.tensor([[5, 6, 7, 8], [5, 6, 9, 8], [5, 6, 7, 8]])
    mask = torch.ones(3, 4)
    # pos row 0 vs neg row 1: common prefix (5, 6), common suffix (8) -> pos 2, neg 0; row 2 has A = 0 -> 1
    w = conflict_token_weights(ids, mask, torch.tensor([1.0, -1.0, 0.0]), torch.zeros(3, dtype=torch.long))
    assert w.tolist() == [[2, 2, 1, 2], [0, 0, 1, 0], [1, 1, 1, 1]]
    # H > 0.7 -> 0; else A - 0.1 H: (1 - 0.05, -1 - 0.03)
    out = entropy_shaped_advantages(torch.tensor([1.0, -1.0, 1.0]), torch.tensor([0.5, 0.3, 0.9]))
    torch.testing.assert_close(out, torch.tensor([0.95, -1.03, 0.0]))


# ------------------------------------------------------------------------------------------------- composition


@pytest.mark.parametrize("name", sorted(LLM_VARIANTS))
def test_every_llm_variant_is_a_variant_with_micro_batch_invariance(name):
    variant = LLM_VARIANTS[name](beta=0.01)
    assert isinstance(variant, Variant)
    gen = torch.Generator().manual_seed(0)
    rewards = torch.randint(0, 2, (8,), generator=gen).float()
    adv = variant.advantages(rewards, torch.arange(8) // 4)
    assert adv.shape == (8,) and torch.isfinite(adv).all()
    logp = (torch.randn(8, 5, generator=gen) - 2).requires_grad_()
    old = logp.detach() + 0.1 * torch.randn(8, 5, generator=gen)
    mask = (torch.arange(5)[None] < torch.randint(1, 6, (8,), generator=gen)[:, None]).float()
    kl = 0.5 * (logp - old) ** 2
    norm = normalizer(mask, num_micro_batches=2)
    full, _ = policy_loss(variant.objective, PolicyBatch(logp, old, adv, mask, kl=kl), norm=norm)
    (g_full,) = torch.autograd.grad(full, logp, retain_graph=True)
    parts = [
        policy_loss(variant.objective, PolicyBatch(logp[s], old[s], adv[s], mask[s], kl=kl[s]), norm=norm)[0]
        for s in (slice(0, 4), slice(4, 8))
    ]
    (g_parts,) = torch.autograd.grad(parts[0] + parts[1], logp)
    torch.testing.assert_close(parts[0] + parts[1], full)
    torch.testing.assert_close(g_parts, g_full)
