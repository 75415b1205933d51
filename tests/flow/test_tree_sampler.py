"""The tree sampler: NFE counts against hand formulas, one evaluation per unique (state, step), edge records.
Run: pytest tests/flow/test_tree_sampler.py -q
"""

import math

import pytest
import torch

from flowrl.flow import (
    FinishSpec,
    ProbeSpec,
    RolloutPlan,
    StepSpec,
    build_method,
    edge_advantages,
    edge_leaf_map,
    evaluate_edges,
    gaussian_logprob,
    rollout,
    split_tree,
    time_grid,
)

P = 2  # prompts
LATENT = (2, 3, 3)


class CountingModel:
    """A tiny affine velocity field that records every (sigma, state) row it evaluates."""

    def __init__(self):
        self.rows = 0
        self.seen: list[tuple[float, bytes]] = []
        self.weight = torch.tensor(0.3)

    def __call__(self, x, sigma, cond):
        self.rows += x.shape[0]
        for xi, si in zip(x, sigma, strict=True):
            self.seen.append((round(float(si), 12), xi.detach().numpy().round(10).tobytes()))
        return self.weight * x - 0.1 * sigma.reshape(-1, 1, 1, 1).to(x.dtype)


def run(method):
    model = CountingModel()
    noise = torch.randn(P, method.plan.num_roots, *LATENT)
    with torch.no_grad():
        tree = rollout(model, method.plan, None, noise, generator=torch.Generator().manual_seed(0))
    return model, tree


def assert_one_eval_per_state(model, tree):
    assert model.rows == tree.nfe
    assert len(set(model.seen)) == len(model.seen), "a (state, step) pair was evaluated twice"


def test_flow_grpo_nfe():
    # G independent chains of T steps: rollout P G T; training: one forward per trained edge, P G (T - 1)
    T, G = 6, 3
    model, tree = run(build_method("flow_grpo", num_inference_steps=T, group_size=G))
    assert tree.nfe == P * G * T
    assert evaluate_edges(CountingModel(), tree, None).nfe == P * G * (T - 1)
    assert_one_eval_per_state(model, tree)


def test_mixgrpo_shared_noise_nfe():
    # one shared x_T: l ODE prefix evaluations + 1 evaluation at the branch step + G (T - l - 1) after it;
    # training: parents of the w window steps = 1 (the branch point) + G (w - 1)
    T, G, w, interval = 8, 3, 2, 5
    it = 2 * interval  # progressive: l = 2
    model, tree = run(
        build_method("mixgrpo", iteration=it, num_inference_steps=T, group_size=G, window_size=w, interval=interval)
    )
    ell = 2
    assert sorted(set(tree.edges.step.tolist())) == [ell, ell + 1]
    assert tree.nfe == P * (ell + 1 + G * (T - ell - 1))
    assert evaluate_edges(CountingModel(), tree, None).nfe == P * (1 + G * (w - 1))
    assert_one_eval_per_state(model, tree)
    # the G leaves of a prompt share the prefix and differ after the branch
    leaves = tree.x[tree.leaves].reshape(P, G, -1)
    assert not torch.allclose(leaves[0, 0], leaves[0, 1])


def test_mixgrpo_flash_nfe():
    # T = 25, window 0..3: prefix/branch as MixGRPO (1 + 3 G), then int(22 * 0.4) = 8 points -> 7 DPM++ steps per leaf
    G = 3
    model, tree = run(build_method("mixgrpo_flash", group_size=G))
    assert tree.nfe == P * (1 + 3 * G + 7 * G)
    assert_one_eval_per_state(model, tree)


def test_tempflow_nfe():
    # per seed: spine evaluations at steps 0..T-2 (T - 1), and a probe from step i is finished by Euler with
    # evaluations at i+1..T-1 (T - 1 - i): K sum_{i=0}^{T-2} (T - 1 - i) = K T (T - 1) / 2; training: T - 1 parents
    T, N, K = 5, 2, 3
    model, tree = run(build_method("tempflow_grpo", num_inference_steps=T, num_seeds=N, num_probes=K))
    assert tree.nfe == P * N * ((T - 1) + K * T * (T - 1) // 2)
    assert evaluate_edges(CountingModel(), tree, None).nfe == P * N * (T - 1)
    assert len(tree.leaves) == P * N * K * (T - 1)
    assert_one_eval_per_state(model, tree)


def test_g2rpo_nfe():
    # T = 8, probes at k = 0..2, strides {1, 2}. A probe child sits at j = k + 1 with n = T - k - 1 steps left.
    # stride 1 evaluates j..T-1 (n points); stride 2 evaluates [j, j+1, j+3, ...] without its last point
    # (ceil(n / 2) points); both share the evaluations at j and j+1 (n >= 3 here): n + ceil(n / 2) - 2 per child.
    # Spine: evaluations at 0..k_max. Training: one parent per probe step.
    T, G, ks = 8, 3, (0, 1, 2)
    model, tree = run(build_method("g2rpo", num_inference_steps=T, group_size=G, probe_steps=ks))
    per_child = sum((T - k - 1) + math.ceil((T - k - 1) / 2) - 2 for k in ks)
    assert tree.nfe == P * (max(ks) + 1 + G * per_child)
    assert evaluate_edges(CountingModel(), tree, None).nfe == P * len(ks)
    assert len(tree.leaves) == P * len(ks) * G * 2
    assert_one_eval_per_state(model, tree)


def test_binary_tree_nfe():
    # TreeGRPO at l = 0 with a window of w binary splits: 2^d nodes evaluated at depth d < w (2^w - 1 in all), then
    # 2^w chains of T - w steps; training: the 2^w - 1 branching nodes
    T, w = 6, 3
    model, tree = run(build_method("tree_grpo", num_inference_steps=T, window_size=w))
    assert tree.nfe == P * ((2**w - 1) + 2**w * (T - w))
    assert evaluate_edges(CountingModel(), tree, None).nfe == P * (2**w - 1)
    assert len(tree.leaves) == P * 2**w
    assert_one_eval_per_state(model, tree)


def test_branch_grpo_nfe():
    # splits at {0, 2}, T = 6: 1 + 2 + 2 (steps 0, 1, 2) + 4 * 3 (steps 3..5) = 17 evaluations per prompt;
    # every edge except the last step's is trained
    model, tree = run(build_method("branch_grpo", num_inference_steps=6, split_points=(0, 2)))
    assert tree.nfe == P * 17
    assert tree.edges.parent.numel() == P * (2 + 2 + 4 + 4 + 4)  # edges into steps 1..5
    assert_one_eval_per_state(model, tree)


def test_dance_grpo_nfe():
    # shared x_T: the first SDE step is one evaluation branching G ways, then G chains: 1 + G (T - 1)
    T, G = 5, 4
    model, tree = run(build_method("dance_grpo", num_inference_steps=T, group_size=G))
    assert tree.nfe == P * (1 + G * (T - 1))
    assert_one_eval_per_state(model, tree)


def test_edges_carry_consistent_records():
    _, tree = run(build_method("branch_grpo", num_inference_steps=6, split_points=(0, 2)))
    e = tree.edges
    torch.testing.assert_close(e.x, tree.x[e.parent])
    torch.testing.assert_close(e.x_next, tree.x[e.child])
    torch.testing.assert_close(e.old_logp, gaussian_logprob(e.x_next, e.old_mean, e.std))
    assert bool((e.sigma_next > 0).all()), "the final step must never be trained"
    torch.testing.assert_close(e.sigma, tree.sigma[e.parent])
    assert torch.equal(e.sibling, e.parent) and torch.equal(e.group, tree.prompt[e.child])
    # each tree has 4 leaves; an edge into a step-1 node (before the second split) has 2 leaves below it
    leaf_map = edge_leaf_map(tree)
    assert leaf_map.sum(1)[e.step == 0].tolist() == [2] * (2 * P)
    assert leaf_map.sum(1)[e.step == 4].tolist() == [1] * (4 * P)


def test_branch_split_samples_with_kappa_std_but_scores_with_std():
    # BranchGRPO kappa = 4: children spread |x_next - mean| ~ 4 std, while old_logp uses std (flagged mismatch)
    method = build_method("branch_grpo", num_inference_steps=6, split_points=(0,), noise_scale=4.0)
    _, tree = run(method)
    e = tree.edges
    split = e.step == 0
    z = (e.x_next - e.old_mean) / e.std.reshape(-1, 1, 1, 1)  # standardised with the scoring std
    assert 2.5 < z[split].std().item() < 6.0 and 0.5 < z[~split].std().item() < 1.6


def test_depth_one_tree_estimators_agree_through_the_sampler():
    # one branch point (G children) followed by deterministic chains: group, per-sibling and both tree
    # back-propagations give the same edge advantages (same eps, no clip)
    T, G = 5, 6
    steps = (StepSpec("flow_sde", 0.7, G, True),) + (StepSpec(),) * (T - 1)
    plan = RolloutPlan(time_grid(T), steps, num_roots=1)
    with torch.no_grad():
        tree = rollout(CountingModel(), plan, None, torch.randn(P, 1, *LATENT))
    rewards = torch.randn(len(tree.leaves))
    kw = {"eps": 1e-4, "clip": None}
    ref = edge_advantages("group", tree, rewards, **kw)
    for name in ("per_sibling", "tree_depthwise", "tree_leaf_first"):
        torch.testing.assert_close(edge_advantages(name, tree, rewards, **kw), ref)


def test_noise_shape_and_plan_errors_are_explained():
    plan = RolloutPlan(time_grid(3), (StepSpec("flow_sde", 0.7, 1, True),) * 3, num_roots=2)
    with pytest.raises(ValueError, match="final step is never trained"):
        rollout(CountingModel(), plan, None, torch.randn(1, 2, *LATENT))
    ok = plan._replace(steps=(StepSpec(),) * 3)
    with pytest.raises(ValueError, match="num_roots"):
        rollout(CountingModel(), ok, None, torch.randn(1, 3, *LATENT))
    with pytest.raises(ValueError, match="identical"):
        rollout(
            CountingModel(),
            ok._replace(steps=(StepSpec("ode_euler", 0.0, 2),) + (StepSpec(),) * 2),
            None,
            torch.randn(1, 2, *LATENT),
        )
    with pytest.raises(ValueError, match="Valid"):
        rollout(CountingModel(), ok._replace(steps=(StepSpec("heun"),) * 3), None, torch.randn(1, 2, *LATENT))
    probes = ok._replace(steps=(StepSpec(),) * 3, probes=ProbeSpec((0,), 2), finish=FinishSpec())
    with pytest.raises(ValueError, match="spine must end"):
        rollout(CountingModel(), probes, None, torch.randn(1, 2, *LATENT))


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("flow_grpo", dict(num_inference_steps=4, group_size=3)),
        ("mixgrpo", dict(num_inference_steps=6, group_size=3, window_size=2)),  # shared prefix, branch at the window
        ("tempflow_grpo", dict(num_inference_steps=4, num_seeds=2, num_probes=2)),  # probes finished by Euler
        ("g2rpo", dict(num_inference_steps=6, group_size=2, probe_steps=(0, 1))),  # two finishing grids
        ("branch_grpo", dict(num_inference_steps=6, split_points=(0, 2))),  # kappa-scaled branching
    ],
)
def test_batched_prompts_sample_what_they_sample_alone(name, kwargs):
    # one rollout of 3 prompts with one generator each, split per prompt, equals 3 one-prompt rollouts
    method = build_method(name, **kwargs)
    R = method.plan.num_roots
    scale = torch.tensor([0.5, -1.0, 2.0])  # (P,) per-prompt conditioning

    def model(x, sigma, cond):  # row-wise: no coupling between the rows of a batch
        return torch.tanh(x) * cond[:, None, None, None] + sigma[:, None, None, None]

    seeds = [11, 22, 33]
    noise = torch.cat([torch.randn(1, R, 1, 2, 2, generator=torch.Generator().manual_seed(s)) for s in seeds])
    gens = [torch.Generator().manual_seed(100 + s) for s in seeds]
    batched = split_tree(rollout(model, method.plan, scale, noise, generator=gens), len(seeds))
    for p, s in enumerate(seeds):
        alone = rollout(
            model, method.plan, scale[p : p + 1], noise[p : p + 1], generator=torch.Generator().manual_seed(100 + s)
        )
        got = batched[p]
        assert got.nfe == alone.nfe and got.kernels == alone.kernels
        for field in ("x", "parent", "sigma", "step", "depth", "prompt", "root", "is_leaf", "leaf_grid"):
            torch.testing.assert_close(getattr(got, field), getattr(alone, field), rtol=0, atol=0)
        for field in alone.edges._fields:
            torch.testing.assert_close(getattr(got.edges, field), getattr(alone.edges, field), rtol=0, atol=0)
