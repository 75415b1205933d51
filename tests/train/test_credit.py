"""Advantages over the iteration's reward std (`train.advantage_std=global`) and numpy's biased std, by hand.

Run: OMP_NUM_THREADS=1 pytest tests/train/test_credit.py -q
"""

import math

import pytest
import torch

from flowrl.config import ConfigError, resolve
from flowrl.flow import build_method, edge_leaf_map, rollout
from flowrl.train.estimators import EdgeCredit, PromptRollout, StepLogProb, make_method
from flowrl.train.estimators.step_logprob import edge_mask
from flowrl.train.image_config import ImageTrainConfig


def _rollouts(method, rewards):
    out = []
    for index, r in enumerate(rewards):  # one flow_grpo chain per leaf, zero velocity: only the SDE noise moves
        tree = rollout(lambda x, s, c: torch.zeros_like(x), method.plan, None, torch.randn(1, 2, 1, 2, 2))
        adv = torch.zeros(tree.edges.parent.numel())
        mask = edge_mask(method, tree, torch.ones_like(adv), iteration=0, generator=torch.Generator())
        out.append(EdgeCredit(PromptRollout(index, f"p{index}", None, tree, torch.tensor(r)[:, None]), adv, mask))
    return out


def test_global_std_advantages_by_hand():
    # prompts with leaf rewards [1, 3] and [2, 6]: per-prompt means 2 and 4, the iteration's biased std
    # sqrt(((1-3)^2 + 0 + (2-3)^2 + (6-3)^2) / 4) = sqrt(3.5) = 1.870829, eps 1e-4 -> [-1, 1] / 1.870929 and
    # [-2, 2] / 1.870929; each chain's 2 trained edges (T = 3, the last never trained) carry its leaf's advantage
    cfg = resolve(ImageTrainConfig, overrides=["train.advantage_std=global", "train.unbiased_std=false"])
    method = make_method(cfg, 0)._replace(plan=build_method("flow_grpo", num_inference_steps=3, group_size=2).plan)
    assert method.advantage_kwargs["scale"] == "batch" and method.advantage_kwargs["unbiased"] is False
    out = StepLogProb(cfg, None, method).finish_credit(_rollouts(method, [[1.0, 3.0], [2.0, 6.0]]), world=1)
    denom = math.sqrt(3.5) + 1e-4
    for ro, expected in zip(out, ([-1.0, 1.0], [-2.0, 2.0]), strict=True):
        roots = ro.rollout.tree.edges.root
        assert roots.numel() == 4  # 2 chains x 2 trained steps
        got = torch.stack([ro.adv[roots == root].unique() for root in roots.unique()])  # one value per chain
        torch.testing.assert_close(got.flatten(), torch.tensor(expected) / denom)
        assert ro.mask.all()


def test_global_std_refuses_tree_estimators():
    cfg = resolve(ImageTrainConfig, overrides=["method.name=tree_grpo", "train.advantage_std=global"])
    with pytest.raises(ConfigError, match="train.advantage_std=global"):
        make_method(cfg, 0)
    cfg = resolve(ImageTrainConfig, overrides=["method.name=branch_grpo", "train.unbiased_std=false"])
    with pytest.raises(ConfigError, match="train.unbiased_std=false"):
        make_method(cfg, 0)


def test_normalize_then_sum_clamps_the_sum_of_unclipped_advantages():
    # MixGRPO advantage_aggr: 3 rewards with the same ranking over 8 samples, each [0] * 7 + [1]: mean 1/8, unbiased
    # std sqrt((7 / 64 + 49 / 64) / 7) = 0.353553, so per reward A = 0.875 / 0.353653 = 2.47418 (eps 1e-4) for the
    # last sample and -0.125 / 0.353653 = -0.353451 for the others. Summed: 7.42255 -> clamped to 5; -1.06035 kept.
    cfg = resolve(
        ImageTrainConfig,
        overrides=[
            "reward.names=[a, b, c]",
            "reward.weights=[1.0, 1.0, 1.0]",
            "reward.aggregation=normalize_then_sum",
        ],
    )
    method = make_method(cfg, 0)._replace(plan=build_method("flow_grpo", num_inference_steps=2, group_size=8).plan)
    tree = rollout(lambda x, s, c: torch.zeros_like(x), method.plan, None, torch.randn(1, 8, 1, 2, 2))
    rewards = torch.zeros(8, 3)
    rewards[7] = 1.0
    adv = StepLogProb(cfg, None, method).advantages(tree, rewards)  # (E,): one trained step, one edge per chain
    leaf = edge_leaf_map(tree).float().argmax(dim=1)
    assert adv[leaf == 7].item() == pytest.approx(5.0)
    torch.testing.assert_close(adv[leaf != 7], torch.full((7,), -3 * 0.125 / (math.sqrt(1 / 8) + 1e-4)))


def test_denoising_step_split_gives_one_optimizer_step_per_probe_step():
    # G2RPO train_g2rpo_hps.py: for k in eta_step_list: PPO over the G siblings probed at step k, backward, step
    cfg = resolve(ImageTrainConfig, overrides=["method.name=g2rpo", "train.step_split=denoising_step"])
    method = make_method(cfg, 0)._replace(
        plan=build_method("g2rpo", num_inference_steps=4, group_size=2, probe_steps=(0, 1)).plan
    )
    tree = rollout(lambda x, s, c: torch.zeros_like(x), method.plan, None, torch.randn(1, 1, 1, 2, 2))
    mask = torch.ones(tree.edges.parent.numel(), dtype=torch.bool)
    ro = EdgeCredit(
        PromptRollout(0, "p", None, tree, torch.zeros(0, 1)), torch.zeros_like(mask, dtype=torch.float), mask
    )
    chunks = StepLogProb(cfg, None, method).step_chunks([ro], {0: 0})
    assert len(chunks) == 4  # one per denoising step; steps 2 and 3 have no edge and are skipped by update()
    assert [int(c[0].mask.sum()) for c in chunks] == [2, 2, 0, 0]  # the 2 probes of steps 0 and 1
    assert all(bool((c[0].rollout.tree.edges.step[c[0].mask] == s).all()) for s, c in enumerate(chunks))
    with pytest.raises(ValueError, match="train.steps_per_epoch=1"):
        resolve(ImageTrainConfig, overrides=["train.step_split=denoising_step", "train.steps_per_epoch=2"])
