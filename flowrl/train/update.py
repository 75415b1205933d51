"""The update of one iteration: inner epochs x optimizer steps over the iteration's credited units.

Each optimizer step's loss is divided by the *global* count of trained units (edges or noised rows) and gradients
are summed over processes, so 2 processes give the update of 1 process with the same global batch.
"""

from __future__ import annotations

import torch

from flowrl.grpo import Normalizer
from flowrl.runtime.distributed import all_reduce_sum, clip_gradients, gather_objects, sync_gradients
from flowrl.runtime.metric_sums import MetricSums
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
    """Inner epochs over the iteration's units (`estimator.step_chunks` per epoch); returns the metrics of every
    process's micro-batches: means over the trained units (edges or rows), totals of "edges" and "nfe_train", the
    step-weighted mean "grad_norm", per-step ratio moments. One host sync for all of them, at the end."""
    sharded = cfg.train.sharding == "fsdp"
    params = [p for group in optimizer.param_groups for p in group["params"]]
    clip = sharding.clip_grad_norm_ if sharded else torch.nn.utils.clip_grad_norm_
    sums = MetricSums()
    n_prompts = cfg.train.prompts_per_iteration
    for epoch in range(cfg.train.inner_epochs):
        gen = seeded_generator(cfg.train.seed, iteration, SHUFFLE_KEY, epoch)
        position = {p: i for i, p in enumerate(torch.randperm(n_prompts, generator=gen).tolist())}
        for k, chunk in enumerate(estimator.step_chunks(units, position)):
            local = float(sum(estimator.trained_units(u) for u in chunk))  # this process's edges (rows) of the step
            trained = all_reduce_sum(torch.tensor(local), world)  # global trained edges (rows) of this optimizer step
            if trained.item() == 0 and not estimator.has_auxiliary_loss(iteration):
                continue  # no advantage signal anywhere and nothing else to learn from
            norm = Normalizer(num_tokens=trained, num_sequences=trained)
            optimizer.zero_grad(set_to_none=False)
            num_prompts = all_reduce_sum(torch.tensor(float(len(chunk))), world)
            estimator.step_loss(chunk, norm, StepContext(iteration, num_prompts, units), sums)
            sync_gradients(params, world, reduce=not sharded)  # FSDP summed the gradients in the backward pass
            grad_norm = clip_gradients(params, cfg.optim.grad_clip, clip=clip)
            if grad_norm is not None:
                sums.add_weighted({"grad_norm": grad_norm}, local)  # mean over steps, weighted by their edges
            optimizer.step()
            if ema is not None:
                ema.update()
            estimator.after_step((iteration * cfg.train.inner_epochs + epoch) * cfg.train.steps_per_epoch + k)
    merged = MetricSums()
    for part in gather_objects(sums.to_cpu(), world):
        merged.merge(part)
    return merged.means()
