"""Rollout plans: what the tree sampler does at every denoising step (docs/architecture.md, The tree sampler).

A plan walks the main grid ``sigmas[0] = 1 > ... > sigmas[T] = 0``. At main step i every frontier node is evaluated
once; its children come from ``steps[i]`` (kernel, noise level, branching factor, sampling noise scale, trained or
not). Optionally ``probes`` add K one-step stochastic children at chosen steps of a deterministic spine (TempFlow,
G2RPO). Nodes that leave the main path (the frontier after the last main step, or probe children) are finished
deterministically by ``finish`` on one or several grids to sigma = 0; every finished sample is a leaf.

A Flow-GRPO chain is a plan with branch 1 everywhere and G roots; MixGRPO with a shared x_T is one root that
branches G ways at the window start; trees put ``branch > 1`` at several steps.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from flowrl.flow.grid import shift_sigmas, unshift_sigmas
from flowrl.flow.kernels import KERNELS, STOCHASTIC_KERNELS


class StepSpec(NamedTuple):
    """What happens at one main-grid step to every frontier node."""

    kernel: str = "ode_euler"  # key of flowrl.flow.kernels.KERNELS
    noise_level: float = 0.0  # a (flow_sde, cps) or eta (dance_sde); 0 for ODE kernels
    branch: int = 1  # children drawn per node (independent noise each)
    trained: bool = False  # whether the edges of this step enter the loss
    noise_scale: float = 1.0  # kappa: children are sampled with kappa * std but scored with std (BranchGRPO)


class ProbeSpec(NamedTuple):
    """One-step stochastic probes off a deterministic spine (TempFlow-GRPO, G2RPO)."""

    steps: tuple[int, ...]  # main-grid step indices where every spine node spawns `count` probes
    count: int  # K children per spine node and probe step
    kernel: str = "flow_sde"
    noise_level: float = 0.7
    trained: bool = True


class FinishSpec(NamedTuple):
    """How a node that leaves the main path is completed to sigma = 0 (deterministically).

    Every grid ends at 0. A grid whose last evaluated point is sigma_k > 0 ends with the jump sigma_k -> 0, whose Euler
    step is ``x - sigma_k v = x0_hat``: "decode the last predicted x0" (G2RPO) is this jump, and a grid that reaches
    0 on its own decodes the last x.
    """

    kernel: str = "ode_euler"  # "ode_euler" or "dpmpp_2m"
    strides: tuple[int, ...] = (1,)  # one leaf per stride g (G2RPO granularities); 1 = the main grid
    compress: float | None = None  # MixGRPO-Flash rho: re-discretise the rest of the grid (see `finish_grids`)
    shift: float = 3.0  # static shift used to re-shift the compressed grid (only with `compress`)


class RolloutPlan(NamedTuple):
    """A full rollout description for one iteration (built by `flowrl.flow.methods`)."""

    sigmas: torch.Tensor  # (T + 1,) main grid, 1 -> 0
    steps: tuple[StepSpec, ...]  # main path, len <= T
    finish: FinishSpec = FinishSpec()
    probes: ProbeSpec | None = None
    num_roots: int = 1  # initial noises per prompt (Flow-GRPO: G independent; shared x_T: 1)

    @property
    def num_inference_steps(self) -> int:
        return self.sigmas.numel() - 1


def check_plan(plan: RolloutPlan) -> None:
    """Validate a plan up front, with errors that say what is wrong and how to fix it."""
    T = plan.num_inference_steps
    if plan.sigmas.ndim != 1 or T < 1 or float(plan.sigmas[0]) != 1.0 or float(plan.sigmas[-1]) != 0.0:
        raise ValueError("`plan.sigmas` must be a (T + 1,) grid from 1 to 0; build it with flowrl.flow.time_grid.")
    if not 0 < len(plan.steps) <= T:
        raise ValueError(f"`plan.steps` has {len(plan.steps)} entries; it needs between 1 and T = {T}.")
    if plan.num_roots < 1:
        raise ValueError(f"`num_roots` must be >= 1, got {plan.num_roots}.")
    for i, spec in enumerate(plan.steps):
        _check_kernel(spec.kernel, f"steps[{i}]")
        if spec.branch < 1:
            raise ValueError(f"steps[{i}].branch must be >= 1, got {spec.branch}.")
        stochastic = spec.kernel in STOCHASTIC_KERNELS and spec.noise_level > 0
        if spec.branch > 1 and not stochastic:
            raise ValueError(
                f"steps[{i}] branches {spec.branch} ways with a deterministic step ({spec.kernel!r}, "
                f"noise_level={spec.noise_level}): the children would be identical. Use a stochastic "
                f"kernel {sorted(STOCHASTIC_KERNELS)} with noise_level > 0, or branch=1."
            )
        if spec.trained and not stochastic:
            raise ValueError(
                f"steps[{i}] is trained but deterministic: an ODE step has no density. Mark it "
                "trained=False or give it a stochastic kernel."
            )
        if spec.trained and i == T - 1:
            raise ValueError(
                f"steps[{i}] goes to sigma = 0 and is marked trained: the final step is never trained "
                "(its Gaussian is degenerate). Mark it trained=False."
            )
        if spec.kernel == "dpmpp_2m":
            raise ValueError(f"steps[{i}]: dpmpp_2m is a finishing solver; use it as FinishSpec(kernel='dpmpp_2m').")
    _check_kernel(plan.finish.kernel, "finish")
    if plan.finish.kernel in STOCHASTIC_KERNELS:
        raise ValueError(
            f"finish.kernel must be deterministic ('ode_euler' or 'dpmpp_2m'), got "
            f"{plan.finish.kernel!r}: finishing completes leaves without extra randomness."
        )
    if not plan.finish.strides or min(plan.finish.strides) < 1:
        raise ValueError(f"finish.strides must be a non-empty tuple of ints >= 1, got {plan.finish.strides}.")
    if plan.finish.compress is not None and not 0 < plan.finish.compress <= 1:
        raise ValueError(f"finish.compress (MixGRPO-Flash rho) must be in (0, 1], got {plan.finish.compress}.")
    probes = plan.probes
    if probes is not None:
        _check_kernel(probes.kernel, "probes")
        if not probes.steps or probes.count < 1:
            raise ValueError("`probes` needs at least one step and count >= 1.")
        if max(probes.steps) != len(plan.steps) - 1 or min(probes.steps) < 0:
            raise ValueError(
                f"With probes the spine must end at the last probe step: len(steps) = "
                f"{len(plan.steps)} but probes.steps = {probes.steps}; set len(steps) = "
                f"max(probes.steps) + 1."
            )
        if max(probes.steps) >= T - 1 and probes.trained:
            raise ValueError(f"Probe step {max(probes.steps)} goes to sigma = 0 and cannot be trained (T = {T}).")
        if any(s.branch > 1 for s in plan.steps):
            raise ValueError("A probed spine must be a chain (branch = 1 on every main step).")
        if probes.trained and not (probes.kernel in STOCHASTIC_KERNELS and probes.noise_level > 0):
            raise ValueError("Trained probes need a stochastic kernel with noise_level > 0.")


def _check_kernel(name: str, where: str) -> None:
    if name not in KERNELS:
        raise ValueError(f"{where}: unknown kernel {name!r}. Valid: {sorted(KERNELS)}.")


def finish_grids(plan: RolloutPlan, start: int) -> tuple[torch.Tensor, ...]:
    """The sigma grids that complete a node at main index `start` to 0, one per leaf it produces.

    * stride g (G2RPO, `train_g2rpo_hps.py`): the main-grid indices ``[start, start + 1, start + 1 + g, ...] <= T``;
      the last strided point is replaced by 0 (the official code never evaluates it and decodes the x0 prediction
      of the point before, which is an Euler jump to 0). For g = 1 this is the main grid itself.
    * compress rho (MixGRPO-Flash, `sampling_utils.py` with `dpm_apply_strategy=post`):
      ``n = int(max((T - start + 1) * rho, 1))`` points ``shift(linspace(t_start, 0, n))`` with ``t_start`` the
      unshifted time of ``sigmas[start]``. n is raised to 2 when it would be 1 (a one-point grid never reaches 0;
      our fix, the official code would stop at ``sigmas[start]``).

    Returns:
        a tuple of 1-D grids (same dtype as `plan.sigmas`), each starting at ``sigmas[start]`` and ending at 0.
    """
    sigmas, T = plan.sigmas, plan.num_inference_steps
    if plan.finish.compress is not None:
        n = max(int(max((T - start + 1) * plan.finish.compress, 1)), 2)
        t0 = unshift_sigmas(sigmas[start], shift=plan.finish.shift)
        grid = shift_sigmas(torch.linspace(float(t0), 0.0, n, dtype=sigmas.dtype), shift=plan.finish.shift)
        grid[0] = sigmas[start]  # exact match with the window's last state (avoid a round-off gap)
        return tuple(grid for _ in plan.finish.strides)
    grids = []
    for g in plan.finish.strides:
        idx = [start] + list(range(start + 1, T + 1, g)) if start < T else [T]
        grid = sigmas[idx].clone()
        grid[-1] = 0.0
        grids.append(grid)
    return tuple(grids)
