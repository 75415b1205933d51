"""Variants: composition, degenerate equivalences, micro-batch invariance of the full loss, errors.

Run: pytest tests/grpo/test_variants.py -q
"""

import pytest
import torch

from flowrl.grpo import VARIANTS, PolicyBatch, Variant, get_variant, normalizer, policy_loss
from flowrl.grpo.variants import grpo

KWARGS = {"dr_grpo": {"max_len": 6}}


def _batch(B=8, T=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    logp = (torch.randn(B, T, generator=gen) - 2).requires_grad_()
    old = logp.detach() + 0.1 * torch.randn(B, T, generator=gen)
    lengths = torch.randint(1, T + 1, (B,), generator=gen)
    mask = (torch.arange(T)[None] < lengths[:, None]).float()
    adv = torch.randn(B, generator=gen)
    return logp, old, adv, mask


def test_variants_table_is_complete():
    assert {"reinforce", "grpo", "dr_grpo", "dapo", "bnpo", "gspo", "cispo", "flow_grpo"} <= set(VARIANTS)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_micro_batch_invariance(name):
    # One batch of 8 equals 2 micro-batches of 4 accumulated (values and gradients), with a global normaliser.
    # BNPO's local token-mean is invariant only for equal token counts per micro-batch, so it gets full masks.
    variant = get_variant(name, **KWARGS.get(name, {}))
    logp, old, adv, mask = _batch()
    if name == "bnpo":
        mask = torch.ones_like(mask)

    def kl(lp, o):  # any per-edge KL estimate: k2 of the old policy
        return 0.5 * (lp - o) ** 2

    full, _ = policy_loss(
        variant.objective, PolicyBatch(logp, old, adv, mask, kl=kl(logp, old)), norm=normalizer(mask)
    )
    (g_full,) = torch.autograd.grad(full, logp)
    norm = normalizer(mask, num_micro_batches=2)
    total = 0.0
    for sl in (slice(0, 4), slice(4, 8)):
        part, _ = policy_loss(
            variant.objective, PolicyBatch(logp[sl], old[sl], adv[sl], mask[sl], kl=kl(logp[sl], old[sl])), norm=norm
        )
        total = total + part
    (g_parts,) = torch.autograd.grad(total, logp)
    torch.testing.assert_close(total, full)
    torch.testing.assert_close(g_parts, g_full)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_first_on_policy_step_has_the_reinforce_gradient(name):
    # With old_logp = logp.detach() every ratio is 1: the gradient must be that of reduce(-A * logp)
    # (for GSPO the sequence ratio's gradient spreads -A / |o_i| over the tokens, the same thing).
    variant = get_variant(name, **KWARGS.get(name, {}))
    logp, _, adv, mask = _batch(seed=1)
    norm = normalizer(mask)
    kl = 0.5 * (logp - logp.detach()) ** 2  # zero gradient on-policy
    loss, metrics = policy_loss(variant.objective, PolicyBatch(logp, logp.detach(), adv, mask, kl=kl), norm=norm)
    (g,) = torch.autograd.grad(loss, logp)
    ref = variant.objective.reduce(-adv[:, None] * logp, mask, norm=norm)
    (g_ref,) = torch.autograd.grad(ref, logp)
    torch.testing.assert_close(g, g_ref)
    torch.testing.assert_close(metrics["ratio_mean"], torch.tensor(1.0))


def test_gspo_equals_grpo_when_T_is_1():
    logp, old, adv, mask = _batch(T=1, seed=2)
    a = get_variant("gspo", eps_low=0.2, eps_high=0.2).objective
    b = get_variant("grpo", eps_low=0.2, eps_high=0.2).objective
    la, _ = policy_loss(a, PolicyBatch(logp, old, adv, mask), norm=normalizer(mask))
    lb, _ = policy_loss(b, PolicyBatch(logp, old, adv, mask), norm=normalizer(mask))
    ga, gb = torch.autograd.grad(la, logp)[0], torch.autograd.grad(lb, logp)[0]
    torch.testing.assert_close(la, lb)
    torch.testing.assert_close(ga, gb)


def test_policy_loss_hand_derived_with_weights_and_kl():
    # Two tokens, r = e on both, A = +1, eps 0.2: per-token loss -1.2; weights [1, 3]; KL [0.5, 0.1], beta 0.1
    # token-mean: (-1.2 * 1 - 1.2 * 3) / 2 + 0.1 * (0.5 + 0.1) / 2 = -2.4 + 0.03 = -2.37; clip_high fraction 1
    objective = grpo(beta=0.1).objective._replace(reduce=get_variant("dapo").objective.reduce)
    batch = PolicyBatch(
        torch.ones(1, 2),
        torch.zeros(1, 2),
        torch.ones(1),
        torch.ones(1, 2),
        kl=torch.tensor([[0.5, 0.1]]),
        weights=torch.tensor([[1.0, 3.0]]),
    )
    loss, metrics = policy_loss(objective, batch, norm=normalizer(batch.mask))
    torch.testing.assert_close(loss, torch.tensor(-2.37))
    torch.testing.assert_close(metrics["clip_ratio/high_mean"], torch.tensor(1.0))
    torch.testing.assert_close(metrics["kl"], torch.tensor(0.3))


def test_guard_needs_std_and_beta_needs_kl():
    logp, old, adv, mask = _batch()
    with pytest.raises(ValueError, match="std"):
        policy_loss(
            get_variant("flow_grpo", guard=True, beta=0.0).objective,
            PolicyBatch(logp, old, adv, mask),
            norm=normalizer(mask),
        )
    with pytest.raises(ValueError, match="beta"):
        policy_loss(get_variant("flow_grpo").objective, PolicyBatch(logp, old, adv, mask), norm=normalizer(mask))


def test_advantage_factories_and_flags():
    r, g = torch.tensor([0.0, 10.0, 1.0, 1.0]), torch.tensor([0, 0, 1, 1])
    # flow_grpo clips |A| at 5; with 2 samples A = +-5 / (5 * sqrt(2) + 1e-4) = +-0.707, so unclipped here
    torch.testing.assert_close(
        get_variant("flow_grpo").advantages(r, g)[:2], torch.tensor([-1.0, 1.0]) * 5 / (50**0.5 + 1e-4)
    )
    assert get_variant("dapo").drop_constant_groups and not get_variant("grpo").drop_constant_groups


def test_lookup_errors_and_dotted_path():
    with pytest.raises(ValueError, match="Valid: .*'grpo'"):
        get_variant("ppo")
    assert isinstance(get_variant("flowrl.grpo.variants:dapo"), Variant)
    with pytest.raises(TypeError, match="expected flowrl.grpo.Variant"):
        get_variant("flowrl.grpo.advantages:group_stats", rewards=torch.ones(2), group_ids=torch.zeros(2).long())
