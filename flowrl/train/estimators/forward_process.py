"""Forward-process estimators: DiffusionNFT (arXiv 2509.16117) and AWM.

A prompt's unit is its clean samples, each with a group advantage, `(L,)`, and noised copies of them (`ForwardRows`)
with the sampling policy's velocity on them. Rollouts are sampled with a lagged policy theta_old (an EMA of the
trained weights, moved after every optimizer step); the loss (`ForwardSpec.loss`) compares the current velocity to
theta_old's on the rows, weighted by each sample's optimality probability r, plus ``kl_beta *`` the velocity MSE to
the reference.
"""

from __future__ import annotations

import contextlib
from functools import partial
from typing import NamedTuple

import torch

from flowrl.config import ConfigError
from flowrl.flow.forward import ForwardRows, forward_rows, optimality_probability
from flowrl.flow.methods import FlowMethod
from flowrl.flow.tree import Tree
from flowrl.flow.velocity import take_rows
from flowrl.grpo import Normalizer, group_advantages
from flowrl.models.base import ImageAdapter
from flowrl.runtime.metric_sums import MetricSums
from flowrl.train.ema import EMA
from flowrl.train.estimators import base
from flowrl.train.image_config import ImageTrainConfig


class ForwardData(NamedTuple):
    """What a forward-process method trains on for one prompt."""

    rows: ForwardRows  # (B,) noised copies of the prompt's leaves
    v_old: torch.Tensor  # (B, C, H, W) the sampling (old) policy's velocity on them
    r: torch.Tensor  # (B,) optimality probability of each row's sample; empty until `finish_credit`


class SampleCredit(NamedTuple):
    """A prompt's rollout with an advantage per sample (leaf) and the noised rows trained on."""

    rollout: base.PromptRollout
    adv: torch.Tensor  # (L,) per leaf of rollout.tree
    data: ForwardData


class ForwardProcess:
    """The `Estimator` of the forward-process methods; `old` is the lagged sampling policy (theta_old)."""

    def __init__(self, cfg: ImageTrainConfig, adapter: ImageAdapter, method: FlowMethod, *, old: EMA) -> None:
        check_config(cfg)
        self.cfg, self.adapter, self.method, self.old = cfg, adapter, method, old

    def sampling(self) -> contextlib.AbstractContextManager:
        return self.old.swapped()

    def advantages(self, tree: Tree, rewards: torch.Tensor, batch_std: list[float] | None = None) -> torch.Tensor:
        """`(L,)` group advantages of the leaves from their `(L, K)` rewards (`base.reward_advantages`)."""
        estimate = partial(group_advantages, group_ids=tree.prompt[tree.leaves])
        return base.reward_advantages(self.cfg, self.method, estimate, rewards, batch_std=batch_std)

    def credit(self, rollout: base.PromptRollout, *, generator: torch.Generator, iteration: int) -> SampleCredit:
        """Every sample is trained on; its rows' r is set once all advantages are known (`finish_credit`)."""
        adv = self.advantages(rollout.tree, rollout.rewards)
        return SampleCredit(rollout, adv, self._forward_data(rollout, generator))

    def _forward_data(self, ro: base.PromptRollout, generator: torch.Generator) -> ForwardData:
        """Noised rows of the prompt's samples and the sampling policy's velocity on them (under `sampling`)."""
        tree = ro.tree
        rows = forward_rows(
            tree.x[tree.leaves],
            self.method.plan.sigmas[:-1],
            per_sample=self.method.forward.per_sample,
            generator=generator,
        )
        one = torch.zeros(rows.sample.numel(), dtype=torch.long)
        v_old = torch.cat(
            [
                self.adapter.velocity(rows.xs[mb], rows.sigma[mb], take_rows(ro.cond, one[mb]))
                for mb in torch.arange(one.numel()).split(self.cfg.train.micro_batch_edges)
            ]
        )  # (B, C, H, W)
        return ForwardData(rows, v_old, torch.empty(0))

    def credit_nfe(self, unit: SampleCredit) -> float:
        return float(unit.data.rows.sample.numel())  # the sampling policy's velocity on every row

    def finish_credit(self, units: list[SampleCredit], world: int) -> list[SampleCredit]:
        """Advantages over the iteration's reward std (with the batch scale), then every row's optimality
        probability `r` from its sample's advantage."""
        if base.global_scale(self.method):
            stds = base.iteration_reward_std(self.cfg, [u.rollout for u in units], world)
            units = [u._replace(adv=self.advantages(u.rollout.tree, u.rollout.rewards, stds)) for u in units]
        out = []
        for u in units:
            r = optimality_probability(u.adv[u.data.rows.sample.cpu()], adv_max=self.method.forward.adv_max)
            out.append(u._replace(data=u.data._replace(r=r.to(u.data.v_old.device))))
        return out

    def trained_units(self, unit: SampleCredit) -> int:
        return unit.data.rows.sample.numel()

    def step_chunks(self, units: list[SampleCredit], position: dict[int, int]) -> list[list[SampleCredit]]:
        return base.prompt_chunks(units, position, self.cfg.train.steps_per_epoch)

    def has_auxiliary_loss(self, iteration: int) -> bool:
        return False

    def after_step(self, step: int) -> None:
        self.old.update(decay=self.method.forward.old_decay(step))

    def step_loss(self, chunk: list[SampleCredit], norm: Normalizer, ctx: base.StepContext, sums: MetricSums) -> None:
        """``sum_rows loss / global rows``, plus ``kl_beta *`` the velocity MSE to the reference; the metrics into
        `sums` (means over rows; "edges" counts the rows)."""
        m, adapter = self.method, self.adapter
        for unit in chunk:
            f = unit.data
            prompt_row = torch.zeros(f.rows.sample.numel(), dtype=torch.long)
            for mb in torch.arange(prompt_row.numel()).split(self.cfg.train.micro_batch_edges):
                rows = ForwardRows(*(t[mb.to(t.device)] for t in f.rows))
                cond = take_rows(unit.rollout.cond, prompt_row[mb])
                v = adapter.velocity(rows.xs, rows.sigma, cond)  # (b, C, H, W)
                policy = m.forward.loss(v, f.v_old[mb], rows, f.r[mb])  # (b,)
                loss = policy.sum()
                if m.kl_beta > 0:
                    with adapter.reference():
                        v_ref = adapter.reference_velocity(rows.xs, rows.sigma, cond)
                    kl = ((v.float() - v_ref.float()) ** 2).flatten(1).mean(1)  # (b,)
                    loss = loss + m.kl_beta * kl.sum()
                    sums.add_weighted_sums({"kl": kl.detach().sum()}, len(mb))
                    sums.add_count("nfe_train", len(mb))
                (loss / norm.num_tokens).backward()
                sums.add_weighted_sums({"loss": policy.detach().sum(), "r_mean": f.r[mb].sum()}, len(mb))
                sums.add_count("edges", len(mb))
                sums.add_count("nfe_train", len(mb))


def check_config(cfg: ImageTrainConfig) -> None:
    """Refuse what the forward-process estimators do not run."""
    if cfg.train.sharding == "fsdp":
        raise ConfigError(
            f"{cfg.method.name!r} trains on the forward process, which train.sharding=fsdp does not run yet; use "
            "train.sharding=none (LoRA, or full fine-tuning that fits one device)."
        )
