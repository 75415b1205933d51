"""Advantage estimators on rollout trees (slot 2 of the core): per-sibling, multi-granular and tree back-propagation.

A tree is given as tensors over its `N` nodes, topologically ordered (``parent[n] < n``): `parent (N,) long` with
-1 for roots, `is_leaf (N,) bool`, and per-node values that are read at the leaves only (rewards). Several trees
(prompts, roots) can share one set of tensors; estimators that normalise "within a tree" use the root of each node.

Tree back-propagation is two small choices composed, not a mode string:

* a *fuse* function turns leaf values into node values: `fuse_leaf_mean` (mean of the leaf descendants, BranchGRPO
  default), `fuse_children_mean` (recursive mean of the children, TreeGRPO), `fuse_logp_softmax` (children weighted by
  ``softmax(alpha log pi(child | node))``, BranchGRPO `tree_prob_weighted`);
* a *normalisation order*: `depthwise_advantages` fuses rewards then normalises per (tree, depth) (BranchGRPO);
  `leaf_first_advantages` normalises leaf rewards per tree then fuses the advantages upward (TreeGRPO).

This file imports only torch and `flowrl.grpo.advantages`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

from flowrl.grpo.advantages import group_advantages

FuseFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""``fuse(parent (N,), value (N,), is_leaf (N,)) -> (N,)``: node values from the leaf values."""


def _check_tree(parent: torch.Tensor, is_leaf: torch.Tensor | None = None) -> None:
    if parent.ndim != 1 or parent.dtype.is_floating_point:
        raise ValueError(
            f"`parent` must be a (N,) integer tensor with -1 for roots, got {parent.dtype} {tuple(parent.shape)}."
        )
    n = torch.arange(parent.numel(), device=parent.device)
    if bool((parent >= n).any()):
        raise ValueError("The tree must be topologically ordered (parent[n] < n): sort nodes by creation order.")
    if is_leaf is not None and is_leaf.shape != parent.shape:
        raise ValueError(f"`is_leaf` {tuple(is_leaf.shape)} must match `parent` {tuple(parent.shape)}.")


def node_depth(parent: torch.Tensor) -> torch.Tensor:
    """`(N,)` long: number of edges from each node to its root."""
    _check_tree(parent)
    depth = torch.zeros_like(parent)
    has_parent = parent >= 0
    safe = parent.clamp(min=0)
    for _ in range(parent.numel()):
        new = torch.where(has_parent, depth[safe] + 1, torch.zeros_like(depth))
        if torch.equal(new, depth):
            break
        depth = new
    return depth


def node_root(parent: torch.Tensor) -> torch.Tensor:
    """`(N,)` long: the root id of each node's tree."""
    _check_tree(parent)
    root = torch.where(parent >= 0, parent, torch.arange(parent.numel(), device=parent.device))
    for _ in range(parent.numel()):
        new = root[root]
        if torch.equal(new, root):
            break
        root = new
    return root


def _levels(parent: torch.Tensor) -> tuple[torch.Tensor, int]:
    depth = node_depth(parent)
    return depth, int(depth.max()) if depth.numel() else 0


def fuse_leaf_mean(parent: torch.Tensor, value: torch.Tensor, is_leaf: torch.Tensor) -> torch.Tensor:
    """Node value = mean of `value` over its leaf descendants (a leaf keeps its own value; BranchGRPO default).

    Nodes without leaf descendants get 0.
    """
    _check_tree(parent, is_leaf)
    depth, max_depth = _levels(parent)
    leaf = is_leaf.bool()
    total = torch.where(leaf, value.float(), 0.0)
    count = leaf.float()
    for d in range(max_depth, 0, -1):  # deepest first: a node's sums are complete before they move up
        at = torch.nonzero(depth == d).flatten()
        total = total.index_add(0, parent[at], total[at])
        count = count.index_add(0, parent[at], count[at])
    return torch.where(count > 0, total / count.clamp(min=1), 0.0)


def fuse_children_mean(parent: torch.Tensor, value: torch.Tensor, is_leaf: torch.Tensor) -> torch.Tensor:
    """Node value = mean of its children's values, recursively from the leaves (TreeGRPO "reward backpropagation")."""
    return _fuse_weighted(parent, value, is_leaf, logits=None)


def fuse_logp_softmax(
    parent: torch.Tensor, value: torch.Tensor, is_leaf: torch.Tensor, *, edge_logp: torch.Tensor, alpha: float = 1.0
) -> torch.Tensor:
    """Node value = ``sum_c softmax_c(alpha log pi(c | node)) V(c)`` over its children (BranchGRPO
    `tree_prob_weighted`, alpha = 1 in the official script).

    Args:
        edge_logp: `(N,)` log-prob of the edge *into* each node (its sampled transition); unused for roots.
        alpha: inverse temperature; 0 gives `fuse_children_mean`.
    """
    return _fuse_weighted(parent, value, is_leaf, logits=alpha * edge_logp.float())


def _fuse_weighted(parent, value, is_leaf, logits):
    _check_tree(parent, is_leaf)
    depth, max_depth = _levels(parent)
    v = torch.where(is_leaf.bool(), value.float(), 0.0)
    for d in range(max_depth, 0, -1):
        at = torch.nonzero(depth == d).flatten()
        p = parent[at]
        if logits is None:
            w = torch.ones(at.numel(), device=v.device)
        else:
            top = torch.full_like(v, -torch.inf).scatter_reduce(0, p, logits[at], reduce="amax")
            w = torch.exp(logits[at] - top[p])  # stable softmax numerator per parent
        num = torch.zeros_like(v).index_add(0, p, w * v[at])
        den = torch.zeros_like(v).index_add(0, p, w)
        has_children = den > 0
        v = torch.where(has_children & ~is_leaf.bool(), num / den.clamp(min=1e-30), v)
    return v


def sibling_advantages(
    values: torch.Tensor,
    sibling: torch.Tensor,
    *,
    eps: float = 1e-4,
    clip: float | None = None,
    unbiased: bool = True,
) -> torch.Tensor:
    """Per-sibling normalisation (TempFlow-GRPO "seed group"): ``(R - mean_sib R) / (std_sib R + eps)``.

    Args:
        values: `(M,)` value of each edge's child (its leaf reward for one-step probes).
        sibling: `(M,)` sibling-set id (the shared parent state).
        eps: 1e-4 in TempFlow's stat tracker, 1e-8 in G2RPO.
        clip: optional ``|A|`` bound (5 in both repos).
        unbiased: Bessel-corrected std; False = numpy's biased std (TempFlow's stat tracker).
    """
    return group_advantages(values, sibling, scale="group", eps=eps, clip=clip, unbiased=unbiased)


def multi_granular_advantages(
    values: torch.Tensor, sibling: torch.Tensor, *, eps: float = 1e-8, clip: float | None = None
) -> torch.Tensor:
    """G2RPO multi-granularity integration: ``A = sum_g (R^g - mean_sib R^g) / (std_sib R^g + eps)``.

    Args:
        values: `(Gamma, M)` reward of each edge's child completed on each granularity (step grid).
        sibling: `(M,)` sibling-set id.
        clip: applied to the sum (the official code clamps the summed advantage to +-adv_clip_max).
    """
    if values.ndim != 2 or values.shape[1] != sibling.shape[0]:
        raise ValueError(f"`values` must be (Gamma, M) with M = {sibling.shape[0]}, got {tuple(values.shape)}.")
    adv = sum(sibling_advantages(v, sibling, eps=eps) for v in values)
    return adv if clip is None else adv.clamp(-clip, clip)


def depthwise_advantages(
    parent: torch.Tensor,
    leaf_reward: torch.Tensor,
    is_leaf: torch.Tensor,
    *,
    fuse: FuseFn = fuse_leaf_mean,
    eps: float = 1e-8,
    clip: float | None = None,
) -> torch.Tensor:
    """BranchGRPO: fuse leaf rewards into node values, then normalise within each (tree, depth).

    ``A(n) = (V(n) - mean_{depth(n)} V) / (std_{depth(n)} V + eps)``; a depth with one node (or constant values)
    gives 0. Roots get 0 (they are no edge's child).

    Args:
        leaf_reward: `(N,)` rewards, read at leaves.
        fuse: `fuse_leaf_mean` (default) or ``partial(fuse_logp_softmax, edge_logp=..., alpha=1.0)``.

    Returns:
        `(N,)` advantage of each node; an edge takes the advantage of its child.
    """
    values = fuse(parent, leaf_reward, is_leaf)
    depth = node_depth(parent)
    key = node_root(parent) * (int(depth.max()) + 1) + depth
    adv = group_advantages(values, key, scale="group", eps=eps, clip=clip)
    return torch.where(parent >= 0, adv, 0.0)


def leaf_first_advantages(
    parent: torch.Tensor,
    leaf_reward: torch.Tensor,
    is_leaf: torch.Tensor,
    *,
    fuse: FuseFn = fuse_children_mean,
    eps: float = 1e-4,
    clip: float | None = None,
) -> torch.Tensor:
    """TreeGRPO: normalise leaf rewards over each tree's leaves, then fuse the advantages upward.

    ``A(leaf) = (R - mean_tree R) / (std_tree R + eps)``; ``A(n) = mean of its children's A`` (default fuse).

    Returns:
        `(N,)` advantage of each node; roots get 0.
    """
    leaf = is_leaf.bool()
    root = node_root(parent)
    idx = torch.nonzero(leaf).flatten()
    leaf_adv = torch.zeros(parent.numel(), dtype=torch.float32, device=parent.device)
    leaf_adv[idx] = group_advantages(leaf_reward[idx].float(), root[idx], scale="group", eps=eps, clip=clip)
    adv = fuse(parent, leaf_adv, is_leaf)
    return torch.where(parent >= 0, adv, 0.0)


TREE_ESTIMATORS: dict[str, Callable[..., torch.Tensor]] = {
    "branch_grpo": depthwise_advantages,
    "branch_grpo_prob": lambda parent, leaf_reward, is_leaf, *, edge_logp, alpha=1.0, **kw: depthwise_advantages(
        parent, leaf_reward, is_leaf, fuse=partial(fuse_logp_softmax, edge_logp=edge_logp, alpha=alpha), **kw
    ),
    "tree_grpo": leaf_first_advantages,
}
"""Named compositions of a fuse function and a normalisation order."""
