"""The interface of an estimator family, and the credit from rewards that both families share.

An estimator turns one prompt's scored rollout into the units it trains on and an optimizer step's chunk of them
into a backward pass. Two families implement it:

- `StepLogProb` (`step_logprob.py`): Flow-GRPO and its relatives. A unit is the prompt's edges (SDE steps) with an
  advantage each, `(E,)`, and a mask of those entering the loss; the loss is the PPO surrogate of step ratios.
- `ForwardProcess` (`forward_process.py`): DiffusionNFT, AWM. A unit is the prompt's samples with an advantage
  each, `(L,)`, and noised copies of them; the loss is on the forward process, under a lagged sampling policy.

The trainer's loop (`flowrl.train.update`, `flowrl.train.image`) speaks only this interface.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, NamedTuple, Protocol, TypeVar

import torch

from flowrl.flow.methods import FlowMethod
from flowrl.flow.tree import Tree
from flowrl.grpo import Normalizer, batch_std, weighted_sum
from flowrl.runtime.distributed import gather_objects
from flowrl.runtime.metric_sums import MetricSums
from flowrl.train.image_config import ImageTrainConfig


class PromptRollout(NamedTuple):
    """One prompt's rollout and its rewards: what every estimator credits."""

    index: int  # global prompt index in the iteration
    prompt: str
    cond: Any  # (1, ...) conditioning row (a NamedTuple of tensors)
    tree: Tree
    rewards: torch.Tensor  # (L, K) per leaf and reward function


class StepContext(NamedTuple):
    """What an optimizer step's loss needs besides its chunk of units."""

    iteration: int
    num_prompts: torch.Tensor  # () global prompts of the step (normaliser of the LayerTuning-RL term)
    units: list  # every unit of this process in the iteration (an input for FSDP's idle passes)


Unit = TypeVar("Unit")


class Estimator(Protocol[Unit]):
    """One estimator family: credit from rewards, the units it trains on, the loss of an optimizer step."""

    method: FlowMethod  # this iteration's method (its plan is what `collect` rolls out)

    def sampling(self) -> AbstractContextManager:
        """The weights rollouts are sampled with (the current ones, or a lagged policy)."""

    def credit(self, rollout: PromptRollout, *, generator: torch.Generator, iteration: int) -> Unit:
        """One prompt's unit; advantages scaled by its own rewards until `finish_credit` (runs under `sampling`)."""

    def credit_nfe(self, unit: Unit) -> float:
        """Network evaluations `credit` spent on this unit (counted with the rollout's)."""

    def finish_credit(self, units: list[Unit], world: int) -> list[Unit]:
        """The units once every process's rewards are known (collective: every rank calls it)."""

    def trained_units(self, unit: Unit) -> int:
        """What the unit adds to an optimizer step's loss normaliser (edges or noised rows)."""

    def step_chunks(self, units: list[Unit], position: dict[int, int]) -> list[list[Unit]]:
        """What each optimizer step of an inner epoch trains on, in order (the same count on every process)."""

    def has_auxiliary_loss(self, iteration: int) -> bool:
        """Whether a step without trained units still has a loss (the LayerTuning-RL term)."""

    def step_loss(self, chunk: list[Unit], norm: Normalizer, ctx: StepContext, sums: MetricSums) -> None:
        """Forward and backward of one optimizer step's chunk; its metrics into `sums` (means over the trained
        units, the count "edges" of them, "nfe_train")."""

    def after_step(self, step: int) -> None:
        """After the `step`-th optimizer step of the run (moves a lagged policy)."""


def global_scale(method: FlowMethod) -> bool:
    """Whether the method's group advantages divide by the std of every reward of the iteration (all processes)."""
    return method.advantage_kwargs.get("scale") == "batch"


def reward_advantages(
    cfg: ImageTrainConfig,
    method: FlowMethod,
    estimate: Callable[..., torch.Tensor],
    rewards: torch.Tensor,
    *,
    batch_std: list[float] | None = None,
) -> torch.Tensor:
    """Advantages from `(L, K)` leaf rewards by `estimate` (per edge or per leaf), in the configured aggregation.

    With the batch scale (``train.advantage_std=global``, DiffusionNFT, AWM) `batch_std` holds the std of every
    reward of the iteration over all processes (`iteration_reward_std`): one entry for the weighted sum, or one per
    reward with ``normalize_then_sum``; None there gives centred, unscaled placeholders (`credit` runs before the
    other processes' rewards are known)."""
    weights = torch.tensor(cfg.reward.weights)
    kwargs = dict(method.advantage_kwargs)
    if global_scale(method) and batch_std is None:
        kwargs.update(scale="none", clip=None)

    def estimate_k(r: torch.Tensor, k: int, **extra) -> torch.Tensor:  # with the k-th batch std when there is one
        std = {} if batch_std is None else {"batch_std": batch_std[k]}
        return estimate(r, **{**kwargs, **std, **extra})

    if cfg.reward.aggregation == "sum_then_normalize" or rewards.shape[1] == 1:
        return estimate_k(weighted_sum(rewards, weights=weights), 0)
    # MixGRPO `advantage_aggr` (train_grpo_flux.py): the weighted sum of UNCLIPPED per-reward advantages, clamped
    # to +-adv_clip_max as a whole (clipping each first would let the sum reach K times the bound)
    clip = kwargs.get("clip")
    total = sum(w * estimate_k(rewards[:, k], k, clip=None) for k, w in enumerate(weights.tolist()))
    return total if clip is None else total.clamp(-clip, clip)


def iteration_reward_std(cfg: ImageTrainConfig, rollouts: list[PromptRollout], world: int) -> list[float]:
    """The std of every leaf reward of the iteration over all processes (flow_grpo ``global_std``: ``np.std`` of
    the gathered rewards, biased with ``train.unbiased_std=false``): of the weighted sum, or of each reward with
    ``normalize_then_sum``. Equal on every process, so 2 processes give the 1-process advantages."""
    parts = gather_objects([(ro.index, ro.rewards) for ro in rollouts], world)
    in_order = [r for _, r in sorted((pair for part in parts for pair in part), key=lambda pair: pair[0])]
    every = torch.cat(in_order + [torch.zeros(0, len(cfg.reward.names))])  # (L_all, K) in prompt order: rank-free
    unbiased = cfg.train.unbiased_std
    if cfg.reward.aggregation == "sum_then_normalize" or every.shape[1] == 1:
        return [batch_std(weighted_sum(every, weights=torch.tensor(cfg.reward.weights)), unbiased=unbiased)]
    return [batch_std(every[:, k], unbiased=unbiased) for k in range(every.shape[1])]


def prompt_chunks(units: list, position: dict[int, int], steps: int) -> list[list]:
    """`steps` optimizer steps, each on a share of the prompts (shuffled by `position`: prompt index -> place)."""
    ordered = sorted(units, key=lambda u: position[u.rollout.index])
    return [[u for u in ordered if position[u.rollout.index] % steps == k] for k in range(steps)]
