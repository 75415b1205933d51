"""Step log-probability estimators: Flow-GRPO, DanceGRPO, MixGRPO, TempFlow, G2RPO, BranchGRPO, TreeGRPO, ...

A prompt's unit is its tree's edges (SDE steps), each with an advantage from the leaf rewards below it, and a mask
of the edges entering the loss. An optimizer step re-evaluates the masked edges in micro-batches (siblings
together: one forward per parent) and backpropagates the PPO surrogate of their step ratios (GRPO-Guard, step
weights, the Gaussian KL to the reference), plus the LayerTuning-RL term when the method has one.
"""

from __future__ import annotations

import contextlib
from functools import partial
from typing import NamedTuple

import torch

from flowrl.flow.advantages import edge_advantages, edge_leaf_map
from flowrl.flow.loss import evaluate_edges, policy_batch, step_weights
from flowrl.flow.methods import FlowMethod
from flowrl.flow.schedules import depth_prune_mask, timestep_subset_mask
from flowrl.flow.tree import Tree
from flowrl.grpo import Normalizer, clipped_surrogate, get_variant, policy_loss
from flowrl.models.base import ImageAdapter
from flowrl.runtime.metric_sums import MetricSums
from flowrl.runtime.seeding import generator as seeded_generator
from flowrl.train import sharding
from flowrl.train.estimators.base import (
    PromptRollout,
    StepContext,
    global_scale,
    iteration_reward_std,
    prompt_chunks,
    reward_advantages,
)
from flowrl.train.image_config import ImageTrainConfig
from flowrl.train.layer_tuning import flow_matching_loss, prompt_weight

LAYER_TUNING_KEY = 20_011  # seed key of the LayerTuning-RL targets' noise


class EdgeCredit(NamedTuple):
    """A prompt's rollout with an advantage per edge and the edges that enter the loss."""

    rollout: PromptRollout
    adv: torch.Tensor  # (E,) per edge of rollout.tree
    mask: torch.Tensor  # (E,) bool


def edge_mask(
    method: FlowMethod, tree: Tree, adv: torch.Tensor, *, iteration: int, generator: torch.Generator
) -> torch.Tensor:
    """Edges that enter the loss: nonzero advantage (flow_grpo / DAPO filter), DanceGRPO's timestep subset,
    BranchGRPO depth pruning."""
    e = tree.edges
    mask = adv != 0  # with the iteration-wide std the advantages come later: `finish_credit` applies this term
    if method.timestep_fraction < 1.0:
        trajectory = edge_leaf_map(tree).float().argmax(dim=1)  # (E,) one leaf below each chain edge
        mask &= timestep_subset_mask(
            e.step,
            trajectory,
            num_steps=method.plan.num_inference_steps,
            fraction=method.timestep_fraction,
            generator=generator,
        )
    if method.pruning is not None and method.pruning.depths:
        p = method.pruning
        mask &= depth_prune_mask(
            tree.depth[e.child], depths=p.depths, iteration=iteration, interval=p.interval, stop_depth=p.stop_depth
        )
    return mask


def micro_batches(unit: EdgeCredit, size: int) -> list[torch.Tensor]:
    """Masked edge indices in chunks of at most `size`, never splitting the children of one parent."""
    parent = unit.rollout.tree.edges.parent
    idx = torch.nonzero(unit.mask).flatten()
    if idx.numel() == 0:
        return []
    idx = idx[torch.argsort(parent[idx], stable=True)]
    parents = parent[idx]
    chunks, start = [], 0
    boundaries = torch.nonzero(parents[1:] != parents[:-1]).flatten().add(1).tolist() + [idx.numel()]
    last = 0
    for b in boundaries:
        if b - start > size and last > start:
            chunks.append(idx[start:last])
            start = last
        last = b
    chunks.append(idx[start:])
    return chunks


class StepLogProb:
    """The `Estimator` of the step log-probability methods."""

    def __init__(self, cfg: ImageTrainConfig, adapter: ImageAdapter, method: FlowMethod) -> None:
        self.cfg, self.adapter, self.method = cfg, adapter, method
        self.objective = get_variant(
            "flow_grpo", clip_range=method.clip_range, beta=method.kl_beta, guard=method.guard
        ).objective

    def sampling(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def advantages(self, tree: Tree, rewards: torch.Tensor, batch_std: list[float] | None = None) -> torch.Tensor:
        """`(E,)` edge advantages from `(L, K)` leaf rewards (`reward_advantages`)."""
        estimate = partial(edge_advantages, self.method.advantage, tree)
        return reward_advantages(self.cfg, self.method, estimate, rewards, batch_std=batch_std)

    def credit(self, rollout: PromptRollout, *, generator: torch.Generator, iteration: int) -> EdgeCredit:
        adv = self.advantages(rollout.tree, rollout.rewards)
        placeholder = torch.ones_like(adv) if global_scale(self.method) else adv  # finish_credit masks zeros
        return EdgeCredit(
            rollout, adv, edge_mask(self.method, rollout.tree, placeholder, iteration=iteration, generator=generator)
        )

    def credit_nfe(self, unit: EdgeCredit) -> float:
        return 0.0

    def finish_credit(self, units: list[EdgeCredit], world: int) -> list[EdgeCredit]:
        """With the batch scale: advantages over the std of the whole iteration's rewards, the per-prompt means kept;
        edges whose advantage is zero leave the mask, as in `edge_mask`."""
        if not global_scale(self.method):
            return units
        stds = iteration_reward_std(self.cfg, [u.rollout for u in units], world)
        out = []
        for u in units:
            adv = self.advantages(u.rollout.tree, u.rollout.rewards, stds)
            out.append(u._replace(adv=adv, mask=u.mask & (adv != 0)))
        return out

    def trained_units(self, unit: EdgeCredit) -> int:
        return int(unit.mask.sum())

    def step_chunks(self, units: list[EdgeCredit], position: dict[int, int]) -> list[list[EdgeCredit]]:
        """``train.step_split=prompts``: `prompt_chunks`. ``denoising_step``: one step per denoising step of the
        grid, each on every prompt's edges at that step, masked to it (G2RPO `train_g2rpo_hps.py`: one optimizer
        step per probe step k, 8 per iteration); steps without an edge on any process are skipped by the caller."""
        if self.cfg.train.step_split != "denoising_step":
            return prompt_chunks(units, position, self.cfg.train.steps_per_epoch)
        ordered = sorted(units, key=lambda u: position[u.rollout.index])
        return [
            [u._replace(mask=u.mask & (u.rollout.tree.edges.step == s).to(u.mask.device)) for u in ordered]
            for s in range(self.method.plan.num_inference_steps)
        ]

    def has_auxiliary_loss(self, iteration: int) -> bool:
        return self.method.hooks is not None and self.method.hooks.sft_weight(iteration) > 0

    def after_step(self, step: int) -> None:
        pass

    def step_loss(self, chunk: list[EdgeCredit], norm: Normalizer, ctx: StepContext, sums: MetricSums) -> None:
        """Forward + backward of every micro-batch of the chunk; its metrics into `sums` (means over edges)."""
        sharded = self.cfg.train.sharding == "fsdp"
        idle = 0  # sharded: zero-loss passes that keep this rank's FSDP collectives in step with the busiest rank
        if sharded:  # FSDP gathers every block in each forward: all ranks run as many passes as the busiest one
            passes = sum(len(micro_batches(u, self.cfg.train.micro_batch_edges)) for u in chunk)
            idle = sharding.max_over_ranks(passes) - passes  # collective: before any forward of this step
            if idle and not ctx.units:
                raise RuntimeError(
                    f"Iteration {ctx.iteration}: every prompt of process {torch.distributed.get_rank()} was skipped "
                    "(non-finite rewards), so it has no input for the forward passes the sharded model needs on "
                    "every rank. Fix the reward's NaN/inf, or train with train.sharding=none."
                )
        for unit in chunk:
            for idx in micro_batches(unit, self.cfg.train.micro_batch_edges):
                self._micro_batch_loss(unit, idx, norm, sums)
        if self.has_auxiliary_loss(ctx.iteration):
            self._layer_tuning_backward(chunk, ctx, sums)
        for _ in range(idle):  # forward and backward of a zero loss: the same collectives, no gradient
            ro = ctx.units[0].rollout
            mean = evaluate_edges(self.adapter.velocity, ro.tree, ro.cond, torch.zeros(1, dtype=torch.long)).mean
            (0.0 * mean.sum()).backward()

    def _micro_batch_loss(self, unit: EdgeCredit, idx: torch.Tensor, norm: Normalizer, sums: MetricSums) -> None:
        """Backward of the policy loss of the edges `idx` of one prompt; their metrics weighted by the edge count."""
        m, ro, adapter = self.method, unit.rollout, self.adapter
        pool, cps = m.logprob_pool, m.cps_logprob
        current = evaluate_edges(adapter.velocity, ro.tree, ro.cond, idx, pool=pool, cps_logprob=cps)
        reference = None
        if m.kl_beta > 0:
            with adapter.reference():
                reference = evaluate_edges(
                    adapter.reference_velocity, ro.tree, ro.cond, idx, pool=pool, cps_logprob=cps
                )
        weights = None
        if m.noise_aware or m.guard:
            weights = step_weights(ro.tree, idx, noise_aware=m.noise_aware, guard=m.guard)
        batch = policy_batch(
            ro.tree,
            current,
            unit.adv,
            idx,
            weights=weights,
            guard=m.guard,
            reference=reference,
            pool=pool,
            kl_form=m.kl_form,
            cps_logprob=cps,
        )
        obj = self.objective
        if m.hooks is not None:  # Dynamic-TreeRPO: per-edge clip bounds from a hook
            lo, hi = m.hooks.clip_bounds(batch.adv, clip_range=m.clip_range)
            obj = obj._replace(surrogate=partial(clipped_surrogate, eps_low=lo, eps_high=hi))
        loss, metrics = policy_loss(obj, batch, norm=norm)
        loss.backward()
        n = idx.numel()
        # micro-batch means weighted by edges; the micro-batch ratio moments give way to the per-step ones below
        sums.add_weighted({k: v for k, v in metrics.items() if not k.startswith("ratio_")}, n)
        sums.add_count("edges", n)
        sums.add_count("nfe_train", current.nfe)
        # per-step importance-ratio statistics from d = r - 1 in float64 (E[r^2] - E[r]^2 cancels in fp32)
        ratio = (current.logp.detach().double() - batch.old_logp.flatten().double()).exp()  # (E',)
        sums.add_grouped_moments("step", ratio, ro.tree.edges.step[idx], m.plan.num_inference_steps)

    def _layer_tuning_backward(self, chunk: list[EdgeCredit], ctx: StepContext, sums: MetricSums) -> None:
        """Dynamic-TreeRPO LayerTuning-RL (our reading, `flowrl/train/layer_tuning.py`): backward of
        ``sum_p lambda_p L_p / P`` over this process's prompts, P the global prompts of the optimizer step."""
        base = self.method.hooks.sft_weight(ctx.iteration)
        for unit in chunk:
            ro = unit.rollout
            weight = prompt_weight(ro.rewards[:, 0], base=base)
            sums.add_weighted({"sft/weight_mean": weight}, 1.0)  # over every prompt of the step
            if weight == 0.0:
                continue
            loss = flow_matching_loss(
                self.adapter.conditional_velocity,
                self.adapter.encode_images,
                ro.prompt,
                ro.cond,
                num_targets=self.cfg.method.sft_targets,
                image_size=self.adapter.height,
                generator=seeded_generator(self.cfg.train.seed, ctx.iteration, LAYER_TUNING_KEY, ro.index),
            )
            (weight * loss / ctx.num_prompts).backward()
            sums.add_weighted({"sft/loss": loss}, weight)  # the lambda-weighted mean of the prompts' losses
