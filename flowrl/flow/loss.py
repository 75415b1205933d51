"""Training-time recomputation of the trained edges and their hand-off to the GRPO core as a `PolicyBatch`.

Each parent state is evaluated ONCE for all its children (siblings share the forward), with the same kernel code
as the rollout, so on-policy ratios are exactly 1. Layout of the core batch: one row per trained edge, ``T = 1``
(`(E, 1)` tensors); a token-mean reduction is then the mean over trained edges, as in every reference repo.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from flowrl.flow.broadcast import compute_dtype
from flowrl.flow.kernels import KERNELS, pooled_gaussian_logprob
from flowrl.flow.tree import Tree
from flowrl.flow.velocity import Cond, VelocityModel, take_rows
from flowrl.grpo.kl import gaussian_kl_same_std
from flowrl.grpo.objective import PolicyBatch
from flowrl.grpo.weights import inverse_delta_weights, noise_aware_weights


class EdgeEval(NamedTuple):
    """Recomputed step of every selected edge under a model."""

    logp: torch.Tensor  # (E,) gaussian_logprob(x_next, mean, std), with grad through the model
    mean: torch.Tensor  # (E, *latent)
    nfe: int  # model rows evaluated: the number of unique parents


CPS_LOGPROBS = ("gaussian", "flow_grpo")
"""How CPS steps are scored (`cps_flow_grpo_logprob`)."""


def cps_flow_grpo_logprob(x_next: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """flow_grpo's CPS "log-probability" ``-mean_d (x_next - mean)^2`` (sd3_sde_with_logprob.py, sde_type "cps":
    constants and the ``1 / (2 std^2)`` dropped), `(B,)` fp32: its log-ratios are ``2 std^2`` times the Gaussian
    ones, the scale the Flow-GRPO-Fast clip 1e-5 was tuned on."""
    dtype = compute_dtype(x_next, mean)  # fp32, or fp64 for fp64 inputs (as gaussian_logprob)
    diff = x_next.to(dtype) - mean.to(dtype)
    return -(diff**2).reshape(diff.shape[0], -1).mean(-1)


def _cps_edges(tree: Tree, idx: torch.Tensor) -> torch.Tensor:
    is_cps = torch.tensor([name == "cps" for name, _ in tree.kernels])
    return is_cps[tree.edges.kernel[idx].cpu()]  # (E',) bool


def _check_cps_form(cps_logprob: str, pool: int) -> None:
    if cps_logprob not in CPS_LOGPROBS:
        raise ValueError(f"Unknown CPS log-probability {cps_logprob!r}. Valid: {list(CPS_LOGPROBS)}.")
    if cps_logprob == "flow_grpo" and pool != 1:
        raise ValueError("cps_logprob='flow_grpo' scores every latent element; it cannot be pooled (pool must be 1).")


def evaluate_edges(
    model: VelocityModel,
    tree: Tree,
    cond: Cond,
    edge_index: torch.Tensor | None = None,
    *,
    pool: int = 1,
    cps_logprob: str = "gaussian",
) -> EdgeEval:
    """Recompute ``(mean, logp)`` of trained edges: one model call on the unique parents, gathered to the children.

    Args:
        model: the current policy (or the reference, for the KL term).
        tree: the rollout.
        cond: the same conditioning as at rollout (one row per prompt).
        edge_index: `(E',)` subset of `tree.edges` (a micro-batch; keep siblings together to share forwards);
            None = all edges.
        pool: score only the ``pool x pool`` block means of each step (`pooled_gaussian_logprob`); 1 = every element.
        cps_logprob: "gaussian" scores CPS steps like every kernel; "flow_grpo" with `cps_flow_grpo_logprob`.
    """
    _check_cps_form(cps_logprob, pool)
    e = tree.edges
    idx = torch.arange(e.parent.numel()) if edge_index is None else edge_index
    parents, inverse = torch.unique(e.parent[idx], return_inverse=True)  # (U,), (E',)
    sigma_in = tree.sigma[parents].to(device=tree.x.device, dtype=tree.x.dtype)  # (U,)
    v_parent = model(tree.x[parents], sigma_in, take_rows(cond, tree.prompt[parents]))
    v = v_parent[inverse]  # (E', *latent): siblings reuse their parent's velocity
    x, x_next, kernel = e.x[idx], e.x_next[idx], e.kernel[idx]
    sigma, sigma_next = e.sigma[idx], e.sigma_next[idx]
    means, order = [], []
    for k in torch.unique(kernel).tolist():  # one call per kernel used (flow_sde for all but mixed plans)
        sel = torch.nonzero(kernel == k).flatten()
        name, level = tree.kernels[k]
        step = KERNELS[name](
            x[sel], v[sel], sigma[sel], sigma_next[sel], noise_level=level, prev_x0=None, prev_sigma=None
        )
        means.append(step.mean)
        order.append(sel)
    mean = torch.cat(means)[torch.argsort(torch.cat(order))]  # (E', *latent) back in edge order
    std = e.std[idx]
    logp = pooled_gaussian_logprob(x_next.detach(), mean, std, pool=pool)
    if cps_logprob == "flow_grpo":
        cps_rows = _cps_edges(tree, idx).to(logp.device)
        logp = torch.where(cps_rows, cps_flow_grpo_logprob(x_next.detach(), mean).to(logp.dtype), logp)
    return EdgeEval(logp=logp, mean=mean, nfe=int(parents.numel()))


def old_logp(tree: Tree, edge_index: torch.Tensor, *, pool: int = 1, cps_logprob: str = "gaussian") -> torch.Tensor:
    """`(E',)` rollout-time log-probabilities of the selected edges (rescored from the stored means when pooled or
    with flow_grpo's CPS form)."""
    _check_cps_form(cps_logprob, pool)
    e = tree.edges
    if pool == 1:
        out = e.old_logp[edge_index]
    else:
        out = pooled_gaussian_logprob(e.x_next[edge_index], e.old_mean[edge_index], e.std[edge_index], pool=pool)
    if cps_logprob == "flow_grpo":
        cps_rows = _cps_edges(tree, edge_index).to(out.device)
        rescored = cps_flow_grpo_logprob(e.x_next[edge_index], e.old_mean[edge_index]).to(out.dtype)
        out = torch.where(cps_rows, rescored, out)
    return out


def _col(t: torch.Tensor) -> torch.Tensor:
    return t.float().reshape(-1, 1)  # (E',) -> (E', 1)


def step_weights(
    tree: Tree, edge_index: torch.Tensor | None = None, *, noise_aware: bool = False, guard: bool = False
) -> torch.Tensor:
    """Detached per-edge loss weights `(E',)`: product of the selected factors (1 when none).

    * ``noise_aware`` (TempFlow-GRPO): ``w_i = std_i / mean_j std_j`` over the trained *steps* (each distinct step
      counted once, not once per edge), computed from the grid, never hard-coded (2.24 for SD3.5-M, a = 0.7).
    * ``guard`` (GRPO-Guard): ``1 / Delta_i``.
    """
    e = tree.edges
    idx = torch.arange(e.parent.numel()) if edge_index is None else edge_index
    w = torch.ones(idx.numel())  # computed on the CPU (ids and sigmas live there), moved to the latents' device
    if noise_aware:
        steps, inverse = torch.unique(e.step, return_inverse=True)  # over all trained edges of the tree
        std_edge = e.std.detach().float().cpu()
        std_step = torch.zeros(steps.numel()).scatter_reduce(0, inverse, std_edge, reduce="amax")  # (S,)
        w = w * noise_aware_weights(std_step, torch.ones_like(std_step))[inverse[idx]]
    if guard:
        w = w * inverse_delta_weights((e.sigma[idx] - e.sigma_next[idx]).float())
    return w.to(e.std.device)


KL_FORMS = ("exact", "flow_grpo")
"""Divisor of the closed-form KL to the reference (`kl_std`)."""


def kl_std(tree: Tree, edge_index: torch.Tensor | None = None, *, form: str = "exact") -> torch.Tensor:
    """`(E',)` the std ``s`` of the Gaussian KL ``mean_d (mean - ref_mean)^2 / (2 s^2)`` of each selected edge.

    * ``exact``: the step's std ``g sqrt(Delta)``, i.e. the true KL between the two step Gaussians.
    * ``flow_grpo``: flow_grpo `train_sd3.py`'s divisor, the ``std_dev_t`` its step returns: for the SDE kernels the
      diffusion coefficient ``g = std / sqrt(Delta)`` (flow_sde: ``a sqrt(sigma / (1 - sigma))``; flow_grpo issue
      #78: "the Delta t factor is missing"), so the KL is Delta times the exact one; for CPS the step std (its
      ``std_dev_t``).
    """
    if form not in KL_FORMS:
        raise ValueError(f"Unknown KL form {form!r}. Valid: {list(KL_FORMS)} ('exact' = the true step KL).")
    e = tree.edges
    idx = torch.arange(e.parent.numel()) if edge_index is None else edge_index
    std = e.std[idx]
    if form == "exact":
        return std
    sde = torch.tensor([tree.kernels[k][0] in ("flow_sde", "dance_sde") for k in range(len(tree.kernels))])
    per_sqrt_delta = sde[e.kernel[idx].cpu()].to(std.device)  # (E',) bool: divide by sqrt(Delta)
    delta = e.delta[idx].to(device=std.device, dtype=std.dtype)
    return torch.where(per_sqrt_delta, std / delta.sqrt(), std)


def policy_batch(
    tree: Tree,
    current: EdgeEval,
    adv: torch.Tensor,
    edge_index: torch.Tensor | None = None,
    *,
    weights: torch.Tensor | None = None,
    guard: bool = False,
    reference: EdgeEval | None = None,
    pool: int = 1,
    kl_form: str = "exact",
    cps_logprob: str = "gaussian",
) -> PolicyBatch:
    """The core's `PolicyBatch` for the selected edges, `(E', 1)` per field.

    Args:
        current: `evaluate_edges` under the policy being trained (with grad).
        adv: `(E,)` per-edge advantages of the whole tree (`flowrl.flow.advantages`).
        weights: `(E',)` from `step_weights`, or None.
        guard: fill `std` and `mean_shift_sq = mean_d (mean - old_mean)^2` for GRPO-Guard's RatioNorm
            (use it with the core's ``flow_grpo(guard=True)`` variant).
        reference: `evaluate_edges` under the reference model (no grad) for the Gaussian KL term.
        kl_form: the KL's divisor (`kl_std`): "exact" (the step std) or "flow_grpo" (its diffusion coefficient).
        pool: the `pool` `current` was evaluated with; the rollout's log-probabilities are rescored with it.
        cps_logprob: the form `current` was evaluated with (the rollout's are rescored with it).
    """
    e = tree.edges
    idx = torch.arange(e.parent.numel()) if edge_index is None else edge_index
    std = e.std[idx]
    device = current.logp.device
    fields = dict(
        logp=_col(current.logp),
        old_logp=_col(old_logp(tree, idx, pool=pool, cps_logprob=cps_logprob)),
        adv=_col(adv[idx]).to(device),
        mask=torch.ones(idx.numel(), 1, device=device),
    )
    if weights is not None:
        fields["weights"] = _col(weights).to(device)
    if guard:
        diff = current.mean.float() - e.old_mean[idx].float()
        fields["std"] = _col(std)
        fields["mean_shift_sq"] = _col(diff.pow(2).reshape(diff.shape[0], -1).mean(-1))
    if reference is not None:
        divisor = kl_std(tree, idx, form=kl_form)
        fields["kl"] = _col(gaussian_kl_same_std(current.mean, reference.mean.detach(), divisor))
    return PolicyBatch(**fields)
