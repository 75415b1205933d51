"""The policy objective: composes a ratio transform, a surrogate, per-edge weights, a reduction and a KL term.

`policy_loss(objective, batch, norm=...)` is the one function both branches call; everything it combines is a
pure function from the other files of this package, chosen by a variant (`flowrl/grpo/variants.py`).
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import torch

from flowrl.grpo.advantages import broadcast_advantages
from flowrl.grpo.ratios import ratio_norm_log_ratio, sequence_log_ratio, token_log_ratio
from flowrl.grpo.reduce import Normalizer


class PolicyBatch(NamedTuple):
    """What the core needs per trained edge (a generated token, or a denoising transition). Shapes `(B, T)`."""

    logp: torch.Tensor  # current policy, with grad
    old_logp: torch.Tensor  # recorded at rollout (or recomputed before the first update)
    adv: torch.Tensor  # (B,) per sample or (B, T) per edge
    mask: torch.Tensor  # 1 where the edge is trained
    kl: torch.Tensor | None = None  # per-edge KL to the reference, already estimated (k1/k2/k3 or Gaussian)
    weights: torch.Tensor | None = None  # detached per-edge weights (TempFlow, GRPO-Guard 1/Delta, ...)
    std: torch.Tensor | None = None  # image branch: the step's Gaussian std (GRPO-Guard RatioNorm)
    mean_shift_sq: torch.Tensor | None = None  # image branch: mean_d (mu_theta - mu_old)^2 (GRPO-Guard)


class RatioFn(Protocol):
    def __call__(self, batch: PolicyBatch) -> torch.Tensor: ...  # (B, T) log-ratio


class SurrogateFn(Protocol):
    def __call__(
        self, log_ratio: torch.Tensor, adv: torch.Tensor, logp: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...


class ReduceFn(Protocol):
    def __call__(self, loss: torch.Tensor, mask: torch.Tensor, *, norm: Normalizer) -> torch.Tensor: ...


class Objective(NamedTuple):
    """A policy objective as named pure parts (optax-style: a NamedTuple of functions)."""

    ratio: RatioFn
    surrogate: SurrogateFn
    reduce: ReduceFn
    beta: float = 0.0  # coefficient of `batch.kl`, added to the per-edge loss before reduction (TRL placement)


class AdvFn(Protocol):
    def __call__(self, rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor: ...  # (B,) -> (B,)


class Variant(NamedTuple):
    """A GRPO-family algorithm: how rewards become advantages, and what loss the update minimises (the factories
    of `flowrl/grpo/variants.py` and `variants_llm.py` build them)."""

    advantages: AdvFn
    objective: Objective
    drop_constant_groups: bool = False  # mask samples of zero-std groups (DAPO dynamic sampling, flow_grpo)


def policy_loss(objective: Objective, batch: PolicyBatch, *, norm: Normalizer) -> tuple[torch.Tensor, dict]:
    """Loss of one (micro-)batch: ``reduce(w * surrogate(ratio(batch), A) + beta * kl)``.

    Args:
        objective: the parts to compose (see `flowrl.grpo.VARIANTS`).
        batch: per-edge tensors, `(B, T)`.
        norm: global counts of the whole optimizer step (`flowrl.grpo.normalizer`), so that micro-batch losses add
            up to the full-batch loss.

    Returns:
        `(loss, metrics)`: a scalar with grad, and detached scalar tensors (`ratio_mean`, `ratio_std`,
        `clip_ratio/low_mean`, `clip_ratio/high_mean`, `clip_ratio/region_mean`, `kl`, `policy_loss`), each a
        masked mean over this micro-batch. No host sync happens here.
    """
    if objective.beta != 0.0 and batch.kl is None:
        raise ValueError(
            f"The objective has beta={objective.beta} but the batch carries no `kl`: compute the "
            "per-edge KL to the reference (flowrl.grpo.kl) or set beta=0."
        )
    mask = batch.mask
    adv = broadcast_advantages(batch.adv, mask)  # (B, T)
    log_ratio = objective.ratio(batch)  # (B, T)
    per_edge, stats = objective.surrogate(log_ratio, adv, batch.logp)  # (B, T)
    if batch.weights is not None:
        per_edge = per_edge * batch.weights.detach().float()
    policy_term = objective.reduce(per_edge, mask, norm=norm)
    loss = policy_term
    metrics: dict[str, torch.Tensor] = {"policy_loss": policy_term.detach()}
    if batch.kl is not None:
        kl_term = objective.reduce(batch.kl, mask, norm=norm)
        if objective.beta != 0.0:
            loss = loss + objective.beta * kl_term
        metrics["kl"] = _masked_mean(batch.kl.detach(), mask)
    ratio = stats.get("ratio")
    if ratio is not None:
        metrics["ratio_mean"] = _masked_mean(ratio, mask)
        metrics["ratio_std"] = _masked_std(ratio, mask)
    for key in ("clip_low", "clip_high", "clip_region"):
        if key in stats:
            metrics[f"clip_ratio/{key.removeprefix('clip_')}_mean"] = _masked_mean(stats[key], mask)
    return loss, metrics


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.bool()
    return torch.where(m, x.float(), 0.0).sum() / m.sum().clamp(min=1)


def _masked_std(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mean = _masked_mean(x, mask)
    return _masked_mean((x.float() - mean) ** 2, mask).sqrt()


# Ratio transforms on a batch: the pure functions of `flowrl.grpo.ratios`, fed from the batch's fields.


def token_ratio(batch: PolicyBatch) -> torch.Tensor:
    """Per-token log-ratio (`flowrl.grpo.ratios.token_log_ratio`)."""
    return token_log_ratio(batch.logp, batch.old_logp, batch.mask)


def sequence_ratio(batch: PolicyBatch) -> torch.Tensor:
    """GSPO sequence log-ratio broadcast to tokens (`flowrl.grpo.ratios.sequence_log_ratio`)."""
    return sequence_log_ratio(batch.logp, batch.old_logp, batch.mask)


def guard_ratio(batch: PolicyBatch) -> torch.Tensor:
    """GRPO-Guard RatioNorm of the per-step log-ratio (`flowrl.grpo.ratios.ratio_norm_log_ratio`)."""
    if batch.std is None or batch.mean_shift_sq is None:
        raise ValueError(
            "GRPO-Guard RatioNorm needs `std` and `mean_shift_sq` in the PolicyBatch: the image branch "
            "fills them from the stored step means; the text branch has no Gaussian step to normalise."
        )
    return ratio_norm_log_ratio(token_ratio(batch), std=batch.std, mean_shift_sq=batch.mean_shift_sq)
