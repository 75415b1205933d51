"""Rollouts of an iteration: every prompt of this process sampled as a tree, its leaves scored, credited by the
run's estimator.

Up to `train.rollout_batch` prompts share one rollout (every step one forward over all their states) and one reward
call; each prompt's initial and SDE noise come from its own generator (seed, iteration, prompt index), so a prompt
samples what it samples alone, on any number of processes.
"""

from __future__ import annotations

import sys
import time

import torch

from flowrl.flow.tree import Tree, rollout, split_tree
from flowrl.models.base import ImageAdapter
from flowrl.runtime.seeding import generator as seeded_generator
from flowrl.train.estimators import Estimator, PromptRollout
from flowrl.train.image_config import ImageTrainConfig
from flowrl.train.reward_fns import compute_rewards


@torch.no_grad()
def collect(
    cfg: ImageTrainConfig,
    adapter: ImageAdapter,
    estimator: Estimator,
    reward_fns: list,
    prompts: list[tuple[int, str]],
    iteration: int,
) -> tuple[list, dict[str, float]]:
    """Roll out every (global index, prompt), score the leaves, credit them (`estimator.credit`; run it under
    `estimator.sampling()`). Prompts with a non-finite reward are skipped and counted (never trained on)."""
    out = []
    stats = {"nfe_rollout": 0.0, "skipped_prompts": 0.0, "time_rollout": 0.0, "time_reward": 0.0, "samples": 0.0}
    for start in range(0, len(prompts), cfg.train.rollout_batch):
        batch = prompts[start : start + cfg.train.rollout_batch]
        gens = [seeded_generator(cfg.train.seed, iteration, index) for index, _ in batch]
        for (index, prompt), gen, tree, rewards in _rollout_batch(adapter, estimator, reward_fns, batch, gens, stats):
            cond = adapter.encode([prompt])
            if not torch.isfinite(rewards).all():
                stats["skipped_prompts"] += 1
                print(
                    f"[flowrl] iteration {iteration}: a reward returned NaN/inf for {prompt!r}; prompt skipped.",
                    file=sys.stderr,
                )
                continue
            unit = estimator.credit(
                PromptRollout(index, prompt, cond, tree, rewards), generator=gen, iteration=iteration
            )
            stats["nfe_rollout"] += estimator.credit_nfe(unit)
            out.append(unit)
    return out, stats


def _rollout_batch(
    adapter: ImageAdapter,
    estimator: Estimator,
    reward_fns: list,
    batch: list[tuple[int, str]],
    gens: list[torch.Generator],
    stats: dict[str, float],
) -> list[tuple[tuple[int, str], torch.Generator, Tree, torch.Tensor]]:
    """One batched rollout and reward call for `batch`: per prompt its tree and `(L, K)` leaf rewards."""
    plan = estimator.method.plan
    noise = torch.cat([torch.randn((1, plan.num_roots, *adapter.latent_shape), generator=g) for g in gens])
    cond = adapter.encode([prompt for _, prompt in batch])  # noise above: (P, R, C, H, W)
    t0 = time.perf_counter()
    tree = rollout(adapter.velocity, plan, cond, noise, generator=gens if len(gens) > 1 else gens[0])
    t1 = time.perf_counter()
    leaf_prompt = tree.prompt[tree.leaves]  # (L,) row of `batch` of each leaf
    images = adapter.decode(tree.x[tree.leaves])  # (L, 3, H, W)
    rewards = compute_rewards(reward_fns, images, [batch[int(p)][1] for p in leaf_prompt])  # (L, K)
    stats["time_rollout"] += t1 - t0
    stats["time_reward"] += time.perf_counter() - t1
    stats["nfe_rollout"] += tree.nfe
    stats["samples"] += images.shape[0]  # scored samples (leaves): the unit of samples per CPU-minute
    trees = split_tree(tree, len(batch)) if len(batch) > 1 else [tree]
    rows = enumerate(zip(batch, gens, trees, strict=True))
    return [(item, g, t, rewards[leaf_prompt == p]) for p, (item, g, t) in rows]
