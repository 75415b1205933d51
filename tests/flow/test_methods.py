"""Every method's plan runs end to end on a tiny conv velocity model, on CPU, into the core's loss; GRPO-Guard
identity. Run: pytest tests/flow/test_methods.py -q
"""

from typing import NamedTuple

import pytest
import torch

from flowrl.flow import (
    METHODS,
    build_method,
    edge_advantages,
    edge_leaf_map,
    evaluate_edges,
    policy_batch,
    rollout,
    step_weights,
)
from flowrl.flow.schedules import timestep_subset_mask
from flowrl.grpo import get_variant, normalizer, policy_loss
from flowrl.grpo.ratios import ratio_norm_log_ratio

# scaled-down settings per method (published defaults are tested in docs and test_tree's hand formulas)
SMALL = {
    "flow_grpo": dict(num_inference_steps=4, group_size=3),
    "flow_grpo_fast": dict(num_inference_steps=6, group_size=3, window_size=2, window_range=(0, 3)),
    "dance_grpo": dict(num_inference_steps=4, group_size=3),
    "mixgrpo": dict(num_inference_steps=6, group_size=3, window_size=2),
    "mixgrpo_flash": dict(num_inference_steps=8, group_size=3, window_size=2),
    "tempflow_grpo": dict(num_inference_steps=4, num_seeds=2, num_probes=3),
    "g2rpo": dict(num_inference_steps=6, group_size=3, probe_steps=(0, 1, 2)),
    "branch_grpo": dict(num_inference_steps=6, split_points=(0, 2)),
    "tree_grpo": dict(num_inference_steps=6, window_size=2),
    "dynamic_treerpo": dict(num_inference_steps=6, window_size=2, noise_levels=(0.9, 0.5)),
}


class Cond(NamedTuple):
    emb: torch.Tensor  # (P, 2)
    scale: torch.Tensor  # (P,)


class TinyVelocity(torch.nn.Module):
    """v = conv(x) + film(cond, sigma): a 1x1 conv net conditioned on a per-prompt embedding."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 2, 1)
        self.film = torch.nn.Linear(3, 2)

    def forward(self, x, sigma, cond: Cond):
        h = self.film(torch.cat([cond.emb, sigma[:, None].float()], dim=1))  # (B, 2)
        return self.conv(x) * cond.scale[:, None, None, None] + h[:, :, None, None]


# no trained edges: covered by tests/flow/test_forward.py and the trainer tests
FORWARD_METHODS = {"diffusion_nft", "awm"}


def test_every_method_is_covered():
    assert set(SMALL) | FORWARD_METHODS == set(METHODS)
    assert all(build_method(name).forward is not None for name in FORWARD_METHODS)


@pytest.mark.parametrize("guard", [False, True])
@pytest.mark.parametrize("name", sorted(SMALL))
def test_method_runs_into_the_core_loss(name, guard):
    model = TinyVelocity()
    method = build_method(name, guard=guard, **SMALL[name])
    P = 2
    cond = Cond(torch.randn(P, 2), torch.rand(P) + 0.5)
    with torch.no_grad():
        tree = rollout(
            model,
            method.plan,
            cond,
            torch.randn(P, method.plan.num_roots, 2, 4, 4),
            generator=torch.Generator().manual_seed(0),
        )
    rewards = tree.x[tree.leaves].mean(dim=(1, 2, 3))  # a toy reward per leaf
    adv = edge_advantages(method.advantage, tree, rewards, **method.advantage_kwargs)
    assert adv.shape == tree.edges.old_logp.shape and bool(torch.isfinite(adv).all())
    edges = torch.arange(adv.numel())
    if method.timestep_fraction < 1.0:  # DanceGRPO: per-trajectory random subset of steps
        traj = edge_leaf_owner(tree)
        edges = torch.nonzero(
            timestep_subset_mask(
                tree.edges.step, traj, num_steps=method.plan.num_inference_steps, fraction=method.timestep_fraction
            )
        ).flatten()
    current = evaluate_edges(model, tree, cond, edges)
    # on-policy: the recomputation reproduces the rollout's log-probs exactly (same kernel code, same inputs)
    torch.testing.assert_close(current.logp.detach(), tree.edges.old_logp[edges], atol=1e-5, rtol=0)
    # and so does the pooled (block-mean) density, rescored from the stored rollout means
    pooled = policy_batch(tree, evaluate_edges(model, tree, cond, edges, pool=2), adv, edges, pool=2)
    torch.testing.assert_close(pooled.logp.detach(), pooled.old_logp, atol=1e-5, rtol=0)
    assert not torch.allclose(pooled.old_logp, tree.edges.old_logp[edges].reshape(-1, 1).float())
    weights = step_weights(tree, edges, noise_aware=method.noise_aware, guard=method.guard)
    batch = policy_batch(tree, current, adv, edges, weights=weights, guard=method.guard)
    variant = get_variant("flow_grpo", clip_range=method.clip_range, beta=0.0, guard=method.guard)
    loss, metrics = policy_loss(variant.objective, batch, norm=normalizer(batch.mask))
    loss.backward()
    assert torch.isfinite(loss)
    assert metrics["ratio_mean"].item() == pytest.approx(1.0, abs=1e-5)
    assert model.conv.weight.grad is not None and bool(torch.isfinite(model.conv.weight.grad).all())


def edge_leaf_owner(tree):
    # for chains each trained edge has one leaf below it: use it as the trajectory id
    return edge_leaf_map(tree).float().argmax(1)


def test_guard_identity_through_the_sampler():
    # x_next = mu_old + std eps; under a perturbed model mu_new: RatioNorm(log r) = mean_d[eps (mu_new - mu_old)]
    torch.set_default_dtype(torch.float64)
    try:
        model = TinyVelocity()
        method = build_method("flow_grpo", guard=True, num_inference_steps=5, group_size=2)
        cond = Cond(torch.randn(1, 2), torch.ones(1))
        with torch.no_grad():
            tree = rollout(model, method.plan, cond, torch.randn(1, 2, 2, 4, 4))
            model.conv.weight.add_(0.05 * torch.randn_like(model.conv.weight))
        current = evaluate_edges(model, tree, cond)
        batch = policy_batch(tree, current, torch.zeros_like(current.logp), guard=True)
        e = tree.edges
        eps = (e.x_next - e.old_mean) / e.std.reshape(-1, 1, 1, 1)
        expected = (eps * (current.mean - e.old_mean)).flatten(1).mean(1)
        normed = ratio_norm_log_ratio(batch.logp - batch.old_logp, std=batch.std, mean_shift_sq=batch.mean_shift_sq)
        torch.testing.assert_close(normed.flatten(), expected.float(), atol=1e-6, rtol=1e-5)
        assert expected.abs().max() > 1e-4  # the perturbation moved the means
    finally:
        torch.set_default_dtype(torch.float32)


def test_guard_weights_are_inverse_delta_and_reference_kl_is_filled():
    model = TinyVelocity()
    method = build_method("tempflow_grpo", guard=True, num_inference_steps=4, num_seeds=1, num_probes=2)
    cond = Cond(torch.randn(1, 2), torch.ones(1))
    with torch.no_grad():
        tree = rollout(model, method.plan, cond, torch.randn(1, 1, 2, 4, 4))
    e = tree.edges
    w_guard = step_weights(tree, guard=True)
    torch.testing.assert_close(w_guard, (1 / (e.sigma - e.sigma_next)).float())
    w_both = step_weights(tree, noise_aware=True, guard=True)
    torch.testing.assert_close(w_both, step_weights(tree, noise_aware=True) * w_guard)
    current = evaluate_edges(model, tree, cond)
    batch = policy_batch(tree, current, torch.zeros(e.std.numel()), reference=evaluate_edges(model, tree, cond))
    assert batch.kl.abs().max().item() < 1e-8  # reference == policy -> KL 0


def test_unknown_method_lists_valid_ones_and_mentions_guard():
    with pytest.raises(ValueError, match="Valid.*guard=True"):
        build_method("grpo_guard")


def test_published_defaults_are_wired():
    m = build_method("flow_grpo")
    assert m.plan.num_inference_steps == 10 and m.plan.num_roots == 24 and m.clip_range == 1e-4
    assert [s.trained for s in m.plan.steps] == [True] * 9 + [False]
    m = build_method("mixgrpo", iteration=60)
    assert m.plan.num_inference_steps == 25 and [i for i, s in enumerate(m.plan.steps) if s.trained] == [2, 3, 4, 5]
    assert m.plan.steps[2].branch == 12 and m.plan.num_roots == 1
    m = build_method("tempflow_grpo")
    assert m.plan.probes.count == 6 and m.plan.num_roots == 4 and m.noise_aware
    m = build_method("g2rpo")
    assert m.plan.probes.steps == tuple(range(8)) and m.plan.finish.strides == (1, 2)
    m = build_method("branch_grpo")
    assert [i for i, s in enumerate(m.plan.steps) if s.branch == 2] == [0, 3, 6, 9] and m.clip_range == 1e-3
    assert m.plan.steps[0].noise_scale == 4.0 and m.plan.steps[1].noise_scale == 1.0
    # BranchGRPO decodes the last step's pred_original (an Euler step to 0), as DanceGRPO: the last step is Euler
    assert [s.kernel for s in m.plan.steps] == ["dance_sde"] * 19 + ["ode_euler"] and not m.plan.steps[-1].trained
    m = build_method("tree_grpo")
    assert [i for i, s in enumerate(m.plan.steps) if s.branch == 2] == [0, 1, 2, 3]
    m = build_method("flow_grpo", guard=True)
    assert m.guard and m.clip_range == 2e-6 and m.kl_beta == 0.0


def test_video_latents_run_through_sampler_and_recomputation():
    # rank-agnostic: (P, R, C, F, H, W) noise, a velocity that only uses elementwise ops
    method = build_method("tree_grpo", num_inference_steps=4, window_size=2)
    model = lambda x, sigma, cond: 0.2 * x - sigma.reshape(-1, *([1] * (x.ndim - 1)))  # noqa: E731
    tree = rollout(model, method.plan, None, torch.randn(1, 1, 2, 3, 4, 4))
    assert tree.x.shape[1:] == (2, 3, 4, 4) and tree.edges.old_mean.shape[1:] == (2, 3, 4, 4)
    current = evaluate_edges(model, tree, None)
    torch.testing.assert_close(current.logp, tree.edges.old_logp)
    torch.testing.assert_close(tree.edges.delta, tree.edges.sigma - tree.edges.sigma_next)


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("flow_grpo", dict(num_inference_steps=6, group_size=8)),
        ("mixgrpo", dict(num_inference_steps=6, group_size=8, window_size=3)),
        ("tree_grpo", dict(num_inference_steps=6, window_size=3)),
        ("tempflow_grpo", dict(num_inference_steps=5, num_seeds=2, num_probes=4)),
        ("g2rpo", dict(num_inference_steps=6, group_size=6, probe_steps=(0, 1, 2))),
        ("branch_grpo", dict(num_inference_steps=5, split_points=(0, 2))),
    ],
)
def test_reward_rises_on_a_learnable_gaussian_model(name, kwargs):
    # policy = the exact velocity of N(mu, 0.5^2) data (test_statistics.py derives it) with a learnable mean mu;
    # reward -(mean of the sample - 2)^2 is maximised by moving mu from 0 towards 2. (A point-mass model would be a
    # bad probe: every ODE-finished leaf lands exactly on mu, so rewards carry no signal.)
    mu = torch.nn.Parameter(torch.zeros(()))

    def model(x, sigma, cond, s=0.5):
        sig = sigma.reshape(-1, 1, 1, 1).to(x.dtype)
        a = 1 - sig
        var = a**2 * s**2 + sig**2
        r = x - a * mu
        return sig / var * r - (mu + a * s**2 / var * r)

    opt = torch.optim.Adam([mu], lr=0.05)
    method = build_method(name, **kwargs)
    variant = get_variant("flow_grpo", clip_range=method.clip_range, beta=0.0)
    for _ in range(20):
        with torch.no_grad():
            tree = rollout(model, method.plan, None, torch.randn(4, method.plan.num_roots, 1, 2, 2))
        rewards = -((tree.x[tree.leaves].mean(dim=(1, 2, 3)) - 2.0) ** 2)
        adv = edge_advantages(method.advantage, tree, rewards, **method.advantage_kwargs)
        current = evaluate_edges(model, tree, None)
        batch = policy_batch(tree, current, adv, weights=step_weights(tree, noise_aware=method.noise_aware))
        loss, _ = policy_loss(variant.objective, batch, norm=normalizer(batch.mask))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert mu.item() > 0.5


def test_dance_grpo_decodes_the_last_clean_prediction_and_trains_9_of_15():
    # DanceGRPO train_grpo_flux.py @ 15cc71d: the image is pred_original = z - sigma_15 v(z, sigma_15) from the last
    # state (sigma_15 = shift(1 / 16) = 0.1875 / 1.125 = 0.1667), and the samples' [:, :-1] drops the last transition
    # before a per-sample permutation keeps int(15 * 0.6) = 9 steps
    method = build_method("dance_grpo", group_size=4)  # 16 steps, shift 3, linear grid
    sigmas = method.plan.sigmas
    assert float(sigmas[-2]) == pytest.approx(0.1875 / 1.125)
    torch.manual_seed(0)
    model, cond = TinyVelocity(), Cond(torch.randn(1, 2), torch.ones(1))
    with torch.no_grad():
        noise, gen = torch.randn(1, 1, 2, 4, 4), torch.Generator().manual_seed(1)
        tree = rollout(model, method.plan, cond, noise, generator=gen)
        leaves = tree.leaves
        last = tree.parent[leaves]  # (L,) states at sigma_15
        sigma = torch.full((last.numel(),), float(sigmas[-2]))
        rows = Cond(cond.emb.expand(last.numel(), -1), cond.scale.expand(last.numel()))
        pred_original = tree.x[last] - sigma[:, None, None, None] * model(tree.x[last], sigma, rows)
    torch.testing.assert_close(tree.x[leaves], pred_original, rtol=1e-5, atol=1e-6)
    e = tree.edges
    assert int(e.step.max()) == 14  # the last transition is never an edge
    trajectory = edge_leaf_map(tree).float().argmax(dim=1)
    mask = timestep_subset_mask(e.step, trajectory, num_steps=16, fraction=0.6, generator=torch.Generator())
    per_trajectory = torch.zeros(leaves.numel(), dtype=torch.long).index_add_(0, trajectory, mask.long())
    assert per_trajectory.tolist() == [9] * 4
