"""Tree advantage estimators of the core, hand-derived. Run: pytest tests/grpo/test_tree.py -q"""

import math
from functools import partial

import pytest
import torch

from flowrl.grpo.advantages import group_advantages
from flowrl.grpo.tree import (
    TREE_ESTIMATORS,
    depthwise_advantages,
    fuse_children_mean,
    fuse_leaf_mean,
    fuse_logp_softmax,
    leaf_first_advantages,
    multi_granular_advantages,
    node_depth,
    node_root,
    sibling_advantages,
)

# A binary tree of depth 2:      0
#                              /   \
#                             1     2
#                            / \   / \
#                           3   4 5   6      leaf rewards 1, 2, 3, 5
PARENT = torch.tensor([-1, 0, 0, 1, 1, 2, 2])
IS_LEAF = torch.tensor([False, False, False, True, True, True, True])
REWARD = torch.tensor([0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 5.0])


def test_depth_and_root():
    assert node_depth(PARENT).tolist() == [0, 1, 1, 2, 2, 2, 2]
    two = torch.tensor([-1, 0, -1, 2, 1])  # two trees interleaved
    assert node_root(two).tolist() == [0, 0, 2, 2, 0]
    with pytest.raises(ValueError, match="topologically"):
        node_depth(torch.tensor([-1, 2, 0]))


def test_fuse_leaf_mean_by_hand():
    # node 1: (1 + 2) / 2 = 1.5, node 2: (3 + 5) / 2 = 4, root: 11 / 4 = 2.75
    torch.testing.assert_close(
        fuse_leaf_mean(PARENT, REWARD, IS_LEAF), torch.tensor([2.75, 1.5, 4.0, 1.0, 2.0, 3.0, 5.0])
    )


def test_children_mean_differs_from_leaf_mean_on_unbalanced_trees():
    # root -> a (leaf, R = 0), root -> b -> {c (R = 2), d (R = 4)}: children mean at root = (0 + 3) / 2 = 1.5,
    # leaf mean = (0 + 2 + 4) / 3 = 2
    parent = torch.tensor([-1, 0, 0, 2, 2])
    leaf = torch.tensor([False, True, False, True, True])
    r = torch.tensor([0.0, 0.0, 0.0, 2.0, 4.0])
    assert fuse_children_mean(parent, r, leaf)[0].item() == pytest.approx(1.5)
    assert fuse_leaf_mean(parent, r, leaf)[0].item() == pytest.approx(2.0)


def test_logp_softmax_fuse_by_hand():
    # node 1's children have log pi = 0 and log 3 -> softmax weights 1/4, 3/4: V(1) = 1/4 * 1 + 3/4 * 2 = 1.75
    edge_logp = torch.tensor([0.0, 0.0, 0.0, 0.0, math.log(3.0), 0.0, 0.0])
    v = fuse_logp_softmax(PARENT, REWARD, IS_LEAF, edge_logp=edge_logp, alpha=1.0)
    assert v[1].item() == pytest.approx(1.75)
    assert v[2].item() == pytest.approx(4.0)  # equal log-probs: plain mean
    # alpha = 0 is the children mean
    torch.testing.assert_close(
        fuse_logp_softmax(PARENT, REWARD, IS_LEAF, edge_logp=edge_logp, alpha=0.0),
        fuse_children_mean(PARENT, REWARD, IS_LEAF),
    )


def test_depthwise_by_hand():
    # depth 1: values 1.5, 4 -> mean 2.75, unbiased std 2.5 / sqrt(2): A = -+ 1.25 / 1.7678 = -+ 1/sqrt(2)
    # depth 2: leaves 1, 2, 3, 5 -> mean 2.75, unbiased std sqrt(8.75 / 3)
    adv = depthwise_advantages(PARENT, REWARD, IS_LEAF, eps=0.0)
    s2 = math.sqrt(8.75 / 3)
    expected = torch.tensor([0.0, -1 / math.sqrt(2), 1 / math.sqrt(2), -1.75 / s2, -0.75 / s2, 0.25 / s2, 2.25 / s2])
    torch.testing.assert_close(adv, expected)


def test_leaf_first_by_hand():
    # leaves normalised over the tree, then internal node = mean of its children's advantages
    s2 = math.sqrt(8.75 / 3)
    leaf = torch.tensor([-1.75, -0.75, 0.25, 2.25]) / s2
    adv = leaf_first_advantages(PARENT, REWARD, IS_LEAF, eps=0.0)
    expected = torch.cat(
        [torch.zeros(1), ((leaf[0] + leaf[1]) / 2).reshape(1), ((leaf[2] + leaf[3]) / 2).reshape(1), leaf]
    )
    torch.testing.assert_close(adv, expected)


def test_trees_are_normalised_separately():
    # two copies of the tree side by side (second shifted by +10 reward): identical advantages
    parent = torch.cat([PARENT, torch.where(PARENT >= 0, PARENT + 7, PARENT)])
    leaf = torch.cat([IS_LEAF, IS_LEAF])
    reward = torch.cat([REWARD, REWARD + 10])
    for fn in (depthwise_advantages, leaf_first_advantages):
        adv = fn(parent, reward, leaf)
        torch.testing.assert_close(adv[:7], adv[7:])


def test_depth_one_tree_all_estimators_agree_with_group():
    # one branch point: root with G = 6 leaf children. Tree back-propagation (either order), per-sibling and group
    # advantages all reduce to (R - mean) / (std + eps) over the siblings.
    g = 6
    parent = torch.tensor([-1] + [0] * g)
    leaf = torch.tensor([False] + [True] * g)
    r = torch.cat([torch.zeros(1), torch.randn(g)])
    group = group_advantages(r[1:], torch.zeros(g, dtype=torch.long), eps=1e-4)
    torch.testing.assert_close(depthwise_advantages(parent, r, leaf, eps=1e-4)[1:], group)
    torch.testing.assert_close(leaf_first_advantages(parent, r, leaf, eps=1e-4)[1:], group)
    torch.testing.assert_close(sibling_advantages(r[1:], parent[1:], eps=1e-4), group)
    prob = partial(TREE_ESTIMATORS["branch_grpo_prob"], edge_logp=torch.randn(g + 1), eps=1e-4)
    torch.testing.assert_close(prob(parent, r, leaf)[1:], group)  # a leaf's own value does not depend on weights


def test_multi_granular_is_the_sum_over_granularities():
    # siblings {0, 1, 2} and {3, 4}: per granularity z-scores, summed
    sib = torch.tensor([0, 0, 0, 1, 1])
    r1 = torch.tensor([1.0, 2.0, 3.0, 0.0, 1.0])
    r2 = torch.tensor([3.0, 2.0, 1.0, 1.0, 3.0])
    # group 0: r1 -> [-1, 0, 1] (std 1), r2 -> [1, 0, -1]: sum 0; group 1: r1 -> [-1, 1] / sqrt(2) * ... std = 0.7071
    # -> [-0.7071, 0.7071]; r2 std = 1.4142 -> [-0.7071, 0.7071]: sum [-1.4142, 1.4142]
    adv = multi_granular_advantages(torch.stack([r1, r2]), sib, eps=0.0)
    torch.testing.assert_close(adv, torch.tensor([0.0, 0.0, 0.0, -math.sqrt(2), math.sqrt(2)]))
    assert multi_granular_advantages(torch.stack([r1, r2]), sib, eps=0.0, clip=1.0)[4].item() == 1.0


def test_tree_module_imports_only_torch_and_the_core():
    import ast
    import pathlib

    import flowrl.grpo.tree as mod

    tree = ast.parse(pathlib.Path(mod.__file__).read_text())
    names = {
        a.name.split(".")[0] if isinstance(n, ast.Import) else n.module
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    }
    assert names <= {"torch", "flowrl.grpo.advantages", "__future__", "collections.abc", "functools", "typing"}
