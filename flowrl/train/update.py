"""The update of one iteration: inner epochs x optimizer steps over the iteration's credited units.

Each optimizer step's loss is divided by the *global* count of trained units (edges or noised rows) and gradients
are summed over processes, so 2 processes give the update of 1 process with the same global batch.
"""

from __future__ import annotations

import math

import torch

from flowrl.grpo import Normalizer
from flowrl.runtime.distributed import all_reduce_sum, clip_gradients, gather_objects, merge_sums, sync_gradients
from flowrl.runtime.seeding import generator as seeded_generator
from flowrl.train import sharding
from flowrl.train.ema import EMA
from flowrl.train.estimators import Estimator, StepContext
from flowrl.train.image_config import ImageTrainConfig

SHUFFLE_KEY = 10_007  # seed key of the prompt order of an inner epoch


def update(
    cfg: ImageTrainConfig,
    estimator: Estimator,
    units: list,
    optimizer: torch.optim.Optimizer,
    ema: EMA | None,
    *,
    iteration: int,
    world: int,
) -> dict[str, float]:
    """Inner epochs over the iteration's units (`estimator.step_chunks` per epoch); returns averaged metrics."""
    sharded = cfg.train.sharding == "fsdp"
    params = [p for group in optimizer.param_groups for p in group["params"]]
    clip = sharding.clip_grad_norm_ if sharded else torch.nn.utils.clip_grad_norm_
    totals: dict[str, torch.Tensor] = {}
    n_prompts = cfg.train.prompts_per_iteration
    for epoch in range(cfg.train.inner_epochs):
        gen = seeded_generator(cfg.train.seed, iteration, SHUFFLE_KEY, epoch)
        position = {p: i for i, p in enumerate(torch.randperm(n_prompts, generator=gen).tolist())}
        for k, chunk in enumerate(estimator.step_chunks(units, position)):
            trained = torch.tensor(float(sum(estimator.trained_units(u) for u in chunk)))
            trained = all_reduce_sum(trained, world)  # global trained edges (rows) of this optimizer step
            if trained.item() == 0 and not estimator.has_auxiliary_loss(iteration):
                continue  # no advantage signal anywhere and nothing else to learn from
            norm = Normalizer(num_tokens=trained, num_sequences=trained)
            optimizer.zero_grad(set_to_none=False)
            num_prompts = all_reduce_sum(torch.tensor(float(len(chunk))), world)
            sums = estimator.step_loss(chunk, norm, StepContext(iteration, num_prompts, units))
            sync_gradients(params, world, reduce=not sharded)  # FSDP summed the gradients in the backward pass
            grad_norm = clip_gradients(params, cfg.optim.grad_clip, clip=clip)
            if grad_norm is not None:
                sums["grad_norm"] = grad_norm * sums.get("edges", torch.zeros(()))
            optimizer.step()
            if ema is not None:
                ema.update()
            estimator.after_step((iteration * cfg.train.inner_epochs + epoch) * cfg.train.steps_per_epoch + k)
            for key, v in sums.items():
                totals[key] = totals.get(key, torch.zeros(())) + v
    return average(merge_sums(gather_objects(totals, world)))


def average(totals: dict[str, torch.Tensor]) -> dict[str, float]:
    """Edge-weighted sums -> means; counts as they are; LayerTuning-RL means; per-step ratio mean and std."""
    out: dict[str, float] = {}
    edges = float(totals.get("edges", torch.zeros(())))
    for key, v in totals.items():
        if key.startswith(("ratio_", "sft_")):
            continue
        out[key] = float(v) if key in ("edges", "nfe_train") else float(v) / max(edges, 1.0)
    if "sft_weight_sum" in totals:
        w = float(totals["sft_weight_sum"])
        out["sft/weight_mean"] = w / max(float(totals["sft_prompts"]), 1.0)
        out["sft/loss"] = float(totals["sft_loss_weighted_sum"]) / w if w > 0 else math.nan
    for key in totals:
        if key.startswith("ratio_n/"):
            step = key.split("/", 1)[1]
            n = float(totals[key])
            mean_dev = float(totals[f"ratio_sum/{step}"]) / n  # E[r - 1]
            var = float(totals[f"ratio_sq/{step}"]) / n - mean_dev**2
            out[f"ratio_mean/{step}"] = 1.0 + mean_dev
            out[f"ratio_std/{step}"] = math.sqrt(max(var, 0.0))
    return out
