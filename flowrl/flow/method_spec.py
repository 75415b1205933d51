"""What an image method is (`FlowMethod`): a rollout plan plus how its edges are credited, weighted and clipped, or,
with a `ForwardSpec`, how its clean samples are trained on; and the options of the tree methods (BranchGRPO's
`Pruning`, Dynamic-TreeRPO's `TreeRPOHooks`). The builders of the published methods are `flowrl.flow.methods`."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from flowrl.flow.plan import RolloutPlan


class Pruning(NamedTuple):
    """BranchGRPO pruning (applied to the trained-edge mask by the trainer, see `flowrl.flow.schedules`)."""

    depths: tuple[int, ...] = ()  # depth pruning set D (script example {15, 16, 17, 18}); () = off
    interval: int = 30  # slide D towards the root every `interval` iterations
    stop_depth: int = 9
    width_ratio: float | None = None  # width pruning ratio rho (0.5 in the paper); None = off
    width_mode: int = 1


def zero_sft_weight(iteration: int) -> float:
    """[?] Dynamic-TreeRPO LayerTuning-RL weight: not published; 0 switches the SFT-as-process-reward term off."""
    del iteration
    return 0.0


def constant_clip_bounds(adv: torch.Tensor, *, clip_range: float) -> tuple[torch.Tensor, torch.Tensor]:
    """[?] Dynamic-TreeRPO adaptive clip bounds: not published; default = the usual symmetric ``(eps, eps)``."""
    eps = torch.full_like(adv, clip_range)
    return eps, eps


class TreeRPOHooks(NamedTuple):
    """Hooks for Dynamic-TreeRPO's unpublished parts (arXiv 2509.23352, abstract only), defaults documented [?]."""

    sft_weight: Callable[[int], float] = zero_sft_weight  # iteration -> weight of the flow-matching (SFT) term
    clip_bounds: Callable[..., tuple[torch.Tensor, torch.Tensor]] = constant_clip_bounds  # adv -> (eps_lo, eps_hi)


class ForwardSpec(NamedTuple):
    """A forward-process objective (`flowrl.flow.forward`): the policy trains on noised copies of its clean
    samples instead of on the log-probabilities of its sampling steps."""

    loss: Callable[..., torch.Tensor]  # (v_theta, v_old, rows, r) -> (B,) per-row loss
    per_sample: int  # schedule sigmas trained per clean sample
    adv_max: float  # advantage clip, also the scale of r = A / adv_max / 2 + 1/2
    old_decay: Callable[[int], float]  # optimizer step -> decay of the lagged sampling (old) policy


class FlowMethod(NamedTuple):
    """A method = a rollout plan + how its edges are credited, weighted and clipped (or, with `forward`, how its
    clean samples are trained on)."""

    name: str
    plan: RolloutPlan
    advantage: str  # key of flowrl.flow.advantages.ADVANTAGES
    advantage_kwargs: dict  # eps / clip of the estimator
    clip_range: float  # PPO clip epsilon
    kl_beta: float = 0.0
    noise_aware: bool = False  # TempFlow step weight
    guard: bool = False  # GRPO-Guard: RatioNorm + 1/Delta step weights
    timestep_fraction: float = 1.0  # DanceGRPO: per-trajectory random subset of trained steps
    pruning: Pruning | None = None
    hooks: TreeRPOHooks | None = None
    logprob_pool: int = 1  # credit only k x k block means of the step noise (kernels.pooled_gaussian_logprob)
    kl_form: str = "exact"  # divisor of the Gaussian KL (flowrl.flow.loss.kl_std): "exact" or "flow_grpo"
    cps_logprob: str = "gaussian"  # CPS steps scored as Gaussians, or flow_grpo's -mean (x_next - mean)^2
    forward: ForwardSpec | None = None  # set: train on the forward process of the leaves, not on edges
