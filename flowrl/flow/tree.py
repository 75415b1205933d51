"""The tree sampler: runs a `RolloutPlan` with any `VelocityModel` and records a tree of latent states.

One network evaluation per unique (state, step): every frontier node is evaluated once and that velocity serves all
its children (branches, probes and the spine child alike); finishing grids that share a prefix (G2RPO strides) share
its evaluations. `Tree.nfe` counts model rows evaluated (a CFG adapter doubles its own cost internally).

Node ids are topological (``parent[n] < n``). Trained edges carry what the loss needs (`Edges`). Latent tensors
(`x`, `x_next`, `old_mean`, `old_logp`, `std`) live on the device of the noise; ids and sigmas stay on the CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from flowrl.flow.broadcast import compute_dtype
from flowrl.flow.kernels import KERNELS, Step, gaussian_logprob
from flowrl.flow.plan import RolloutPlan, StepSpec, check_plan, finish_grids
from flowrl.flow.velocity import Cond, VelocityModel, take_rows


class Edges(NamedTuple):
    """Trained edges (parent -> child transitions that enter the loss), `E` of them."""

    parent: torch.Tensor  # (E,) long, node id of x
    child: torch.Tensor  # (E,) long, node id of x_next
    x: torch.Tensor  # (E, *latent) state before the step
    x_next: torch.Tensor  # (E, *latent) sampled next state
    old_logp: torch.Tensor  # (E,) gaussian_logprob(x_next, old_mean, std) at rollout
    old_mean: torch.Tensor  # (E, *latent) step mean at rollout (GRPO-Guard RatioNorm)
    std: torch.Tensor  # (E,) the step's Gaussian std (scoring std, not the kappa-scaled sampling std)
    sigma: torch.Tensor  # (E,)
    sigma_next: torch.Tensor  # (E,); Delta = sigma - sigma_next
    step: torch.Tensor  # (E,) long, main-grid step index
    kernel: torch.Tensor  # (E,) long, index into Tree.kernels
    group: torch.Tensor  # (E,) long, prompt (GRPO group) id
    sibling: torch.Tensor  # (E,) long, sibling-set id (edges from the same parent state and step)
    root: torch.Tensor  # (E,) long, root node id (the tree the edge belongs to)

    @property
    def delta(self) -> torch.Tensor:
        """`(E,)` step size ``Delta = sigma - sigma_next > 0``."""
        return self.sigma - self.sigma_next


class Tree(NamedTuple):
    """A rollout: `N` nodes (states), the trained `edges`, and the NFE count."""

    x: torch.Tensor  # (N, *latent) node states; a leaf holds the finished sample (sigma = 0)
    parent: torch.Tensor  # (N,) long, -1 for roots
    sigma: torch.Tensor  # (N,) noise level of the node (0 for leaves)
    step: torch.Tensor  # (N,) long, main-grid index of the node (T for finished leaves)
    depth: torch.Tensor  # (N,) long, edges from the root
    prompt: torch.Tensor  # (N,) long, row of `cond`
    root: torch.Tensor  # (N,) long, root node id
    is_leaf: torch.Tensor  # (N,) bool
    leaf_grid: torch.Tensor  # (N,) long, index into plan.finish.strides for leaves, -1 otherwise
    edges: Edges
    kernels: tuple[tuple[str, float], ...]  # (kernel name, noise level) per Edges.kernel id
    nfe: int  # network evaluations (model rows) of the rollout

    @property
    def leaves(self) -> torch.Tensor:
        """`(L,)` node ids of the leaves in increasing order: the order rewards are given in."""
        return torch.nonzero(self.is_leaf).flatten()


class _Frontier(NamedTuple):
    ids: torch.Tensor  # (n,)
    x: torch.Tensor  # (n, *latent)
    prev_x0: torch.Tensor | None  # (n, *latent) x0_hat of the parent's evaluation (multistep history)
    prev_sigma: float | None


class _Recorder:
    """Accumulates nodes and edges; ids are assigned in creation order (topological)."""

    def __init__(self) -> None:
        self.nodes: dict[str, list[torch.Tensor]] = {k: [] for k in _NODE_FIELDS}
        self.edges: dict[str, list[torch.Tensor]] = {k: [] for k in Edges._fields}
        self.count = 0
        self.kernels: list[tuple[str, float]] = []

    def add_nodes(self, x, parent, sigma, step, depth, prompt, root=None, leaf_grid=None) -> torch.Tensor:
        n = x.shape[0]
        ids = torch.arange(self.count, self.count + n)
        self.count += n
        fields = {
            "x": x,
            "parent": parent,
            "sigma": _full(n, sigma, torch.float64),
            "step": _full(n, step),
            "depth": depth,
            "prompt": prompt,
            "root": ids if root is None else root,
            "is_leaf": _full(n, False, torch.bool),
            "leaf_grid": _full(n, -1 if leaf_grid is None else leaf_grid),
        }
        for k, value in fields.items():
            self.nodes[k].append(value)
        return ids

    def node(self, field: str) -> torch.Tensor:
        return torch.cat(self.nodes[field])

    def kernel_id(self, name: str, noise_level: float) -> int:
        if (name, noise_level) not in self.kernels:
            self.kernels.append((name, noise_level))
        return self.kernels.index((name, noise_level))


def _full(n: int, value, dtype: torch.dtype = torch.long) -> torch.Tensor:
    return torch.full((n,), value, dtype=dtype)


_NODE_FIELDS = ("x", "parent", "sigma", "step", "depth", "prompt", "root", "is_leaf", "leaf_grid")


def rollout(
    model: VelocityModel,
    plan: RolloutPlan,
    cond: Cond,
    noise: torch.Tensor,
    *,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
) -> Tree:
    """Sample a tree of latents for a batch of prompts.

    Args:
        model: the velocity field (policy at rollout time; wrap the call in `torch.no_grad()`).
        plan: what to do per step (`flowrl.flow.methods` builds one per method and iteration).
        cond: conditioning with one row per prompt (see `flowrl.flow.velocity.Cond`).
        noise: `(P, R, *latent)` initial noise, ``R = plan.num_roots`` roots per prompt.
        generator: source of the SDE noise (reproducible rollouts); a sequence of P generators draws each prompt's
            noise from its own, exactly as P one-prompt rollouts would (batched prompts then sample what they sample
            alone, whichever prompts share the batch; `split_tree` gives the per-prompt trees back).

    Returns:
        The `Tree`; rewards are given per leaf in `Tree.leaves` order.
    """
    check_plan(plan)
    if noise.ndim < 3 or noise.shape[1] != plan.num_roots:
        raise ValueError(
            f"`noise` must be (P, R, *latent) with R = plan.num_roots = {plan.num_roots}, got "
            f"{tuple(noise.shape)}. Use noise[:, None] for one shared x_T per prompt."
        )
    sigmas = plan.sigmas
    rec = _Recorder()
    P, R = noise.shape[:2]
    if isinstance(generator, Sequence) and len(generator) != P:
        raise ValueError(f"Got {len(generator)} generators for {P} prompts: pass one per prompt (or a single one).")
    x = noise.flatten(0, 1).to(compute_dtype(noise))  # (P * R, *latent), at least fp32
    prompt = torch.arange(P).repeat_interleave(R)
    ids = rec.add_nodes(x, torch.full((P * R,), -1), 1.0, 0, torch.zeros(P * R, dtype=torch.long), prompt)
    frontier = _Frontier(ids, x, None, None)
    to_finish: list[tuple[_Frontier, int]] = []
    nfe = 0
    probe_steps = set(plan.probes.steps) if plan.probes is not None else set()
    for i, spec in enumerate(plan.steps):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        node_prompt = rec.node("prompt")[frontier.ids]
        sigma_in = torch.full((len(frontier.ids),), s, dtype=frontier.x.dtype, device=frontier.x.device)
        v = model(frontier.x, sigma_in, take_rows(cond, node_prompt))  # (n, *latent)
        nfe += len(frontier.ids)
        x0_hat = frontier.x - s * v.to(frontier.x.dtype)  # (n, *latent) multistep history for dpmpp_2m
        if i in probe_steps:
            pr = plan.probes
            probe_spec = StepSpec(kernel=pr.kernel, noise_level=pr.noise_level, branch=pr.count, trained=pr.trained)
            probe = _step(rec, frontier, probe_spec, v=v, x0_hat=x0_hat, i=i, s=s, s_next=s_next, generator=generator)
            to_finish.append((probe, i + 1))
        if plan.probes is not None and i == len(plan.steps) - 1:
            break  # the spine ends at its last probe step
        frontier = _step(rec, frontier, spec, v=v, x0_hat=x0_hat, i=i, s=s, s_next=s_next, generator=generator)
    if plan.probes is None:
        to_finish.append((frontier, len(plan.steps)))
    for nodes, start in to_finish:
        nfe += _finish(rec, model, cond, plan, nodes, start)
    return _assemble(rec, nfe)


def _step(
    rec: _Recorder,
    frontier: _Frontier,
    spec: StepSpec,
    *,
    v: torch.Tensor,
    x0_hat: torch.Tensor,
    i: int,
    s: float,
    s_next: float,
    generator: torch.Generator | Sequence[torch.Generator] | None,
) -> _Frontier:
    """One main-grid step of `spec` from every frontier node: the kernel's mean and std from the velocity `v`, then
    `spec.branch` children per node (`_branch`)."""
    step = KERNELS[spec.kernel](
        frontier.x,
        v,
        s,
        s_next,
        noise_level=spec.noise_level,
        prev_x0=frontier.prev_x0,
        prev_sigma=frontier.prev_sigma,
    )
    return _branch(
        rec,
        frontier,
        step,
        i=i,
        s=s,
        s_next=s_next,
        branch=spec.branch,
        noise_scale=spec.noise_scale,
        trained=spec.trained,
        kernel_id=rec.kernel_id(spec.kernel, spec.noise_level),
        x0_hat=x0_hat,
        generator=generator,
    )


def _branch(
    rec: _Recorder,
    frontier: _Frontier,
    step: Step,
    *,
    i: int,
    s: float,
    s_next: float,
    branch: int,
    noise_scale: float,
    trained: bool,
    kernel_id: int,
    x0_hat: torch.Tensor,
    generator: torch.Generator | Sequence[torch.Generator] | None,
) -> _Frontier:
    """Draw `branch` children per frontier node: ``x_next = mean + kappa * std * eps``; record trained edges."""
    n = len(frontier.ids)
    mean = step.mean.repeat_interleave(branch, dim=0)  # (n * b, *latent)
    ones = (1,) * (mean.ndim - 1)
    std = torch.broadcast_to(step.std, (n, *ones)).reshape(n).repeat_interleave(branch)  # (n * b,)
    std_b = std.reshape(-1, *ones)  # (n * b, 1, ..., 1)
    if bool((std > 0).any()):
        eps = _noise(mean, rec.node("prompt")[frontier.ids].repeat_interleave(branch), generator)
        x_next = mean + noise_scale * std_b * eps  # BranchGRPO samples with kappa * std, scores with std
    else:
        x_next = mean
    parent = frontier.ids.repeat_interleave(branch)
    depth = rec.node("depth")[frontier.ids].repeat_interleave(branch) + 1
    prompt = rec.node("prompt")[parent]
    root = rec.node("root")[parent]
    child = rec.add_nodes(x_next, parent, s_next, i + 1, depth, prompt, root)
    if trained:
        e = len(child)
        edges = {
            "parent": parent,
            "child": child,
            "x": frontier.x.repeat_interleave(branch, dim=0),
            "x_next": x_next,
            "old_logp": gaussian_logprob(x_next, mean, std_b),
            "old_mean": mean,
            "std": std,
            "sigma": _full(e, s, torch.float64),
            "sigma_next": _full(e, s_next, torch.float64),
            "step": _full(e, i),
            "kernel": _full(e, kernel_id),
            "group": prompt,
            "sibling": parent,
            "root": root,
        }
        for k, value in edges.items():
            rec.edges[k].append(value)
    return _Frontier(child, x_next, x0_hat.repeat_interleave(branch, dim=0), s)


def _noise(
    mean: torch.Tensor, prompt: torch.Tensor, generator: torch.Generator | Sequence[torch.Generator] | None
) -> torch.Tensor:
    """Standard normal noise shaped like `mean`; with one generator per prompt, each prompt's rows (contiguous, in
    prompt order: the frontier is prompt-major) come from its own generator."""
    if not isinstance(generator, Sequence):
        return torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
    counts = torch.bincount(prompt, minlength=len(generator)).tolist()
    parts = [
        torch.randn((c, *mean.shape[1:]), generator=g, dtype=mean.dtype, device=mean.device)
        for g, c in zip(generator, counts, strict=True)
        if c
    ]
    return torch.cat(parts)


def split_tree(tree: Tree, num_prompts: int) -> list[Tree]:
    """The one-prompt trees of a rollout of `num_prompts` prompts (node and edge ids renumbered in their order, the
    prompt id 0, the NFE shared equally: every prompt runs the same plan). With per-prompt generators each equals the
    tree a rollout of that prompt alone gives, up to the numerics of the batched forward."""
    if tree.nfe % num_prompts:
        raise ValueError(f"tree.nfe = {tree.nfe} is not a multiple of {num_prompts} prompts: not one plan per prompt.")
    out = []
    for p in range(num_prompts):
        keep = torch.nonzero(tree.prompt == p).flatten()  # (n_p,) increasing: relative order kept
        new_id = torch.full((tree.parent.numel(),), -1, dtype=torch.long)
        new_id[keep] = torch.arange(keep.numel())
        parent = tree.parent[keep]
        e = tree.edges
        ek = torch.nonzero(e.group == p).flatten()
        picked = {f: getattr(e, f)[ek.to(getattr(e, f).device)] for f in Edges._fields}  # (E_p, ...) each field
        ids = {f: new_id[picked[f]] for f in ("parent", "child", "sibling", "root")}  # node ids renumbered
        edges = Edges(**{**picked, **ids, "group": torch.zeros(ek.numel(), dtype=torch.long)})
        out.append(
            Tree(
                x=tree.x[keep.to(tree.x.device)],
                parent=torch.where(parent >= 0, new_id[parent.clamp(min=0)], parent),
                sigma=tree.sigma[keep],
                step=tree.step[keep],
                depth=tree.depth[keep],
                prompt=torch.zeros(keep.numel(), dtype=torch.long),
                root=new_id[tree.root[keep]],
                is_leaf=tree.is_leaf[keep],
                leaf_grid=tree.leaf_grid[keep],
                edges=edges,
                kernels=tree.kernels,
                nfe=tree.nfe // num_prompts,
            )
        )
    return out


def _finish(rec: _Recorder, model: VelocityModel, cond: Cond, plan: RolloutPlan, nodes: _Frontier, start: int) -> int:
    """Complete `nodes` (all at main index `start`) on every finishing grid; add one leaf per node and grid."""
    grids = finish_grids(plan, start)
    if start == plan.num_inference_steps:  # already at sigma = 0: the nodes are the leaves
        _mark_leaves(rec, nodes.ids)
        return 0
    prompt = rec.node("prompt")[nodes.ids]
    rows = take_rows(cond, prompt)
    finals: dict[int, torch.Tensor] = {}
    nfe = _walk(
        model,
        rows,
        plan.finish.kernel,
        grids,
        list(range(len(grids))),
        0,
        nodes.x,
        nodes.prev_x0,
        nodes.prev_sigma,
        finals,
    )
    depth = rec.node("depth")[nodes.ids] + 1
    root = rec.node("root")[nodes.ids]
    leaf_ids = []
    for g in range(len(grids)):
        leaf_ids.append(rec.add_nodes(finals[g], nodes.ids, 0.0, plan.num_inference_steps, depth, prompt, root, g))
    _mark_leaves(rec, torch.cat(leaf_ids))
    return nfe


def _walk(
    model,
    rows,
    kernel: str,
    grids,
    members: list[int],
    pos: int,
    x,
    prev_x0,
    prev_sigma,
    finals: dict[int, torch.Tensor],
) -> int:
    """Run the finishing grids in `members` (identical up to `pos`) from `x`; evaluations of a shared prefix happen
    once. Stores each grid's final state in `finals` and returns the NFE spent."""
    s = float(grids[members[0]][pos])
    if s == 0.0:
        for g in members:
            finals[g] = x
        return 0
    v = model(x, torch.full((x.shape[0],), s, dtype=x.dtype, device=x.device), rows)
    nfe = x.shape[0]
    x0_hat = x - s * v.to(x.dtype)
    by_next: dict[float, list[int]] = {}
    for g in members:
        by_next.setdefault(float(grids[g][pos + 1]), []).append(g)
    for s_next, group in by_next.items():
        step = KERNELS[kernel](x, v, s, s_next, noise_level=0.0, prev_x0=prev_x0, prev_sigma=prev_sigma)
        nfe += _walk(model, rows, kernel, grids, group, pos + 1, step.mean, x0_hat, s, finals)
    return nfe


def _mark_leaves(rec: _Recorder, ids: torch.Tensor) -> None:
    is_leaf = torch.cat(rec.nodes["is_leaf"])
    is_leaf[ids] = True
    rec.nodes["is_leaf"] = [is_leaf]


def _assemble(rec: _Recorder, nfe: int) -> Tree:
    nodes = {k: torch.cat(v) for k, v in rec.nodes.items()}
    if rec.edges["parent"]:
        edges = Edges(**{k: torch.cat(v) for k, v in rec.edges.items()})
    else:
        x = nodes["x"]
        empty_long = torch.zeros(0, dtype=torch.long)
        empty = torch.zeros(0, dtype=x.dtype)
        latent = x.new_zeros((0, *x.shape[1:]))
        edges = Edges(
            parent=empty_long,
            child=empty_long,
            x=latent,
            x_next=latent,
            old_logp=empty,
            old_mean=latent,
            std=empty,
            sigma=empty.double(),
            sigma_next=empty.double(),
            step=empty_long,
            kernel=empty_long,
            group=empty_long,
            sibling=empty_long,
            root=empty_long,
        )
    return Tree(**nodes, edges=edges, kernels=tuple(rec.kernels), nfe=nfe)
