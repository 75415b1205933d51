"""From leaf rewards to one advantage per trained edge: the tree sampler wired to the core's estimators.

Tree metadata lives on the CPU, so these small computations run there (rewards are moved) and return CPU tensors.
Rewards are given per leaf in `Tree.leaves` order (`(L,)`, already aggregated over reward models, or normalised
and summed per model with `flowrl.grpo.aggregate`). Each function returns `(E,)` advantages aligned with
`tree.edges`; an edge is credited with (a function of) the leaves below its child.

| name | estimator | used by |
|---|---|---|
| ``group`` | GRPO over each prompt's leaves; edge = mean leaf advantage below it | Flow-GRPO, Fast, Dance, Mix |
| ``per_sibling`` | child's mean leaf reward normalised among siblings (same parent state) | TempFlow-GRPO |
| ``multi_granular`` | per finishing grid, per-sibling normalisation; summed over grids | G2RPO |
| ``tree_depthwise`` | leaf-mean fuse, then per (tree, depth) normalisation | BranchGRPO |
| ``tree_depthwise_prob`` | log-prob softmax fuse (alpha), then per (tree, depth) normalisation | BranchGRPO (prob) |
| ``tree_leaf_first`` | leaf normalisation per tree, then mean of children upward | TreeGRPO, Dynamic-TreeRPO |
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

from flowrl.flow.tree import Tree
from flowrl.grpo.advantages import group_advantages
from flowrl.grpo.tree import (
    depthwise_advantages,
    fuse_leaf_mean,
    fuse_logp_softmax,
    leaf_first_advantages,
    multi_granular_advantages,
    sibling_advantages,
)


def leaf_values(tree: Tree, rewards: torch.Tensor) -> torch.Tensor:
    """Scatter `(L,)` leaf rewards into a `(N,)` node tensor (0 at internal nodes)."""
    leaves = tree.leaves
    if rewards.shape != leaves.shape:
        raise ValueError(
            f"Expected one reward per leaf, {leaves.numel()} in `tree.leaves` order, got {tuple(rewards.shape)}."
        )
    values = torch.zeros(tree.parent.numel(), dtype=torch.float32)
    values[leaves] = rewards.detach().float().cpu()
    return values


def edge_leaf_map(tree: Tree) -> torch.Tensor:
    """`(E, L)` bool: ``m[e, l]`` is True when leaf l (in `tree.leaves` order) lies below edge e's child."""
    leaves = tree.leaves
    below = torch.zeros(tree.parent.numel(), leaves.numel())  # (N, L) leaf counts below each node
    below[leaves, torch.arange(leaves.numel())] = 1.0
    depth = tree.depth
    for d in range(int(depth.max()), 0, -1):  # deepest first
        at = torch.nonzero(depth == d).flatten()
        below = below.index_add(0, tree.parent[at], below[at])
    return below[tree.edges.child] > 0


def group_edge_advantages(
    tree: Tree,
    rewards: torch.Tensor,
    *,
    eps: float = 1e-4,
    clip: float | None = 5.0,
    scale: str = "group",
    unbiased: bool = True,
    batch_std: float | None = None,
) -> torch.Tensor:
    """Flow-GRPO: ``A_leaf = (R - mean_prompt R) / (std_prompt R + eps)`` clipped to +-clip; an edge gets the mean
    leaf advantage below it (for chains, exactly its trajectory's advantage). ``scale="batch"`` with `batch_std`
    divides by the std of every reward of the iteration (flow_grpo `global_std`), computed by the caller."""
    leaves = tree.leaves
    leaf_adv = group_advantages(
        rewards.detach().float().cpu(),
        tree.prompt[leaves],
        scale=scale,
        eps=eps,
        clip=clip,
        unbiased=unbiased,
        batch_std=batch_std,
    )
    node_adv = fuse_leaf_mean(tree.parent, leaf_values(tree, leaf_adv), tree.is_leaf)
    return node_adv[tree.edges.child]


def sibling_edge_advantages(
    tree: Tree, rewards: torch.Tensor, *, eps: float = 1e-4, clip: float | None = 5.0, unbiased: bool = True
) -> torch.Tensor:
    """TempFlow-GRPO: the child's (mean) leaf reward normalised among the edges that share its parent state
    (``unbiased=False``: TempFlow's numpy std)."""
    values = fuse_leaf_mean(tree.parent, leaf_values(tree, rewards), tree.is_leaf)
    return sibling_advantages(values[tree.edges.child], tree.edges.sibling, eps=eps, clip=clip, unbiased=unbiased)


def multi_granular_edge_advantages(
    tree: Tree, rewards: torch.Tensor, *, eps: float = 1e-8, clip: float | None = 5.0
) -> torch.Tensor:
    """G2RPO: for every finishing grid g, the child's reward on grid g normalised among siblings; summed over g."""
    grids = sorted(set(tree.leaf_grid[tree.leaves].tolist()))
    per_grid = []
    for g in grids:
        is_g = tree.is_leaf & (tree.leaf_grid == g)
        values = fuse_leaf_mean(tree.parent, leaf_values(tree, rewards), is_g)
        per_grid.append(values[tree.edges.child])
    return multi_granular_advantages(torch.stack(per_grid), tree.edges.sibling, eps=eps, clip=clip)


def _node_edge_logp(tree: Tree) -> torch.Tensor:
    logp = torch.zeros(tree.parent.numel(), dtype=torch.float32)
    logp[tree.edges.child] = tree.edges.old_logp.float().cpu()
    return logp


def depthwise_edge_advantages(
    tree: Tree, rewards: torch.Tensor, *, eps: float = 1e-8, clip: float | None = 5.0
) -> torch.Tensor:
    """BranchGRPO: leaf-mean reward fusion, then normalisation per (tree, depth); an edge gets its child's value."""
    adv = depthwise_advantages(tree.parent, leaf_values(tree, rewards), tree.is_leaf, eps=eps, clip=clip)
    return adv[tree.edges.child]


def depthwise_prob_edge_advantages(
    tree: Tree, rewards: torch.Tensor, *, alpha: float = 1.0, eps: float = 1e-8, clip: float | None = 5.0
) -> torch.Tensor:
    """BranchGRPO `tree_prob_weighted`: children fused by ``softmax(alpha old_logp)``, then per-depth normalisation.

    Edges that were not recorded (untrained) enter the softmax with log-prob 0."""
    fuse = partial(fuse_logp_softmax, edge_logp=_node_edge_logp(tree), alpha=alpha)
    adv = depthwise_advantages(tree.parent, leaf_values(tree, rewards), tree.is_leaf, fuse=fuse, eps=eps, clip=clip)
    return adv[tree.edges.child]


def leaf_first_edge_advantages(
    tree: Tree, rewards: torch.Tensor, *, eps: float = 1e-4, clip: float | None = 5.0
) -> torch.Tensor:
    """TreeGRPO: leaves normalised per tree, internal advantages = mean of the children's, edge = child's."""
    adv = leaf_first_advantages(tree.parent, leaf_values(tree, rewards), tree.is_leaf, eps=eps, clip=clip)
    return adv[tree.edges.child]


EdgeAdvantageFn = Callable[..., torch.Tensor]

ADVANTAGES: dict[str, EdgeAdvantageFn] = {
    "group": group_edge_advantages,
    "per_sibling": sibling_edge_advantages,
    "multi_granular": multi_granular_edge_advantages,
    "tree_depthwise": depthwise_edge_advantages,
    "tree_depthwise_prob": depthwise_prob_edge_advantages,
    "tree_leaf_first": leaf_first_edge_advantages,
}


def edge_advantages(name: str, tree: Tree, rewards: torch.Tensor, **kwargs) -> torch.Tensor:
    """`ADVANTAGES[name](tree, rewards, **kwargs)`; unknown names raise with the valid options."""
    if name not in ADVANTAGES:
        raise ValueError(f"Unknown tree advantage estimator {name!r}. Valid: {sorted(ADVANTAGES)}.")
    return ADVANTAGES[name](tree, rewards, **kwargs)
