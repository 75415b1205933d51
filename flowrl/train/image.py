"""The image GRPO trainer: `flowrl train`.

One iteration, for any method of `flowrl.flow.methods` (a chain, a shared-prefix branch, a probed spine, a tree)::

    prompts  -> plan of this iteration -> tree rollout per prompt (no grad)  -> rewards on the leaves
             -> advantages per trained edge -> edge mask (zero advantage, timestep subset, pruning)
             -> inner epochs x optimizer steps: micro-batches of edges (siblings together, one forward per parent)
                -> policy_loss (PPO clip, GRPO-Guard, step weights, Gaussian KL to the reference) -> backward
             -> gradient all-reduce over processes -> clip -> AdamW -> EMA -> metrics, evaluation, checkpoint

Scale-out: every process rolls out its share of the prompts (``prompts[rank::world]``); a prompt's whole tree lives on
one process, so groups never span processes and advantages need no gather. The loss of an optimizer step is divided
by the *global* count of trained edges and gradients are summed over processes, so 2 processes give the update of
1 process with the same global batch. All randomness is derived from (seed, iteration, prompt index), which makes
rollouts independent of the process count and resumption bit-exact.

Run: ``flowrl train`` (ShapeWorld default), ``flowrl train --preset shapes_mixgrpo train.iterations=20``,
``flowrl train --resume runs/<name>``; for two CPU processes
``accelerate launch --config_file configs/accelerate/cpu_2proc.yaml -m flowrl.train.image`` (docs/scaling.md).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import torch

import rewards as reward_lib
from flowrl.config import ConfigError, dump_yaml
from flowrl.flow.advantages import edge_advantages, edge_leaf_map
from flowrl.flow.forward import ForwardRows, forward_rows, optimality_probability
from flowrl.flow.grid import named_grid
from flowrl.flow.loss import evaluate_edges, policy_batch, step_weights
from flowrl.flow.methods import FlowMethod, TreeRPOHooks, build_method
from flowrl.flow.plan import RolloutPlan, StepSpec
from flowrl.flow.schedules import depth_prune_mask, timestep_subset_mask
from flowrl.flow.tree import Tree, rollout, split_tree
from flowrl.flow.velocity import take_rows
from flowrl.grpo import (
    Normalizer,
    batch_std,
    clipped_surrogate,
    get_variant,
    group_advantages,
    policy_loss,
    weighted_sum,
)
from flowrl.models.base import ImageAdapter
from flowrl.models.shapeworld import load_shapeworld_adapter
from flowrl.runtime.checkpoint import (
    capture_rng_state,
    latest_checkpoint,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from flowrl.runtime.metrics import MetricsLogger, read_metrics
from flowrl.runtime.plots import plot_curves, save_image_grid
from flowrl.runtime.progress import progress
from flowrl.runtime.run_dir import create_run_dir, write_config
from flowrl.runtime.seeding import LORA_INIT, seeded_global_rng
from flowrl.shapes.grader import grade
from flowrl.train import eval_cache, sharding
from flowrl.train.ema import EMA
from flowrl.train.image_config import ImageTrainConfig, OptimConfig
from flowrl.train.layer_tuning import flow_matching_loss, prompt_weight, reward_adaptive_clip_bounds
from flowrl.train.model_card import write_model_card
from flowrl.train.prompts import file_prompts, iteration_prompts, read_prompts_file
from flowrl.train.shapes_eval import change_lines, grade_by_split, shapeworld_eval_set

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RESOLUTION = 512  # SD3 / FLUX adapters' rollout size when model.resolution is 0
MODEL_GRIDS = {"shapeworld": "sd3", "sd3": "sd3", "flux": "linear"}  # method.grid when unset: the pipeline's grid


class ForwardData(NamedTuple):
    """What a forward-process method (`FlowMethod.forward`) trains on for one prompt."""

    rows: ForwardRows  # (B,) noised copies of the prompt's leaves
    v_old: torch.Tensor  # (B, C, H, W) the sampling (old) policy's velocity on them
    r: torch.Tensor  # (B,) optimality probability of each row's sample


class PromptRollout(NamedTuple):
    """One prompt's rollout and its credit assignment."""

    index: int  # global prompt index in the iteration
    prompt: str
    cond: Any  # (1, ...) conditioning row (a NamedTuple of tensors)
    tree: Tree
    rewards: torch.Tensor  # (L, K) per leaf and reward function
    adv: torch.Tensor  # (E,) per trained edge; (L,) per leaf for forward-process methods
    mask: torch.Tensor  # (E,) bool, edges entering the loss; (L,) leaves for forward-process methods
    forward: ForwardData | None = None


class EvalSummary(NamedTuple):
    strict: dict[str, float]  # per family and "overall" (held-out); "train/<family>", "train/overall" (train split)
    score: dict[str, float]
    count: int
    outcomes: dict[str, list[float]] | None = None  # key -> per-sample strict passes, in a fixed (paired) order


# ----------------------------------------------------------------------------------------------------- config


def resolve_model_path(path: str) -> Path:
    """A model folder given relative to the current directory or, failing that, to the flowrl repository."""
    for candidate in (Path(path), REPO_ROOT / path):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"Model folder {path!r} not found (looked in {Path.cwd()} and {REPO_ROOT}). Pass "
        "model.path=/path/to/folder; the shipped ShapeWorld model is assets/shapeworld."
    )


# ----------------------------------------------------------------------------------------------------- pieces


def _generator(*keys: int) -> torch.Generator:
    seed = 0
    for k in keys:
        seed = (seed * 1_000_003 + int(k)) % (2**63 - 1)
    return torch.Generator().manual_seed(seed)


def build_adapter(cfg: ImageTrainConfig, device: torch.device) -> ImageAdapter:
    """The model adapter of `cfg.model.kind`, loaded from a local folder."""
    m = cfg.model
    folder = resolve_model_path(m.path)
    common = dict(lora_rank=m.lora_rank, lora_alpha=m.lora_alpha)
    # full fine-tuning keeps a frozen copy as the reference only when a KL term needs it (24 GB for FLUX.1-dev)
    needs_reference = make_method(cfg, 0).kl_beta > 0
    extra = dict(
        gradient_checkpointing=m.gradient_checkpointing,
        mixed_precision=m.mixed_precision,
        reference_copy=needs_reference,
        **common,
    )
    if m.kind == "shapeworld":  # an SD3 pipeline: trained through the SD3 adapter (flowrl.models.shapeworld)
        if m.max_sequence_length or m.detach_uncond:
            raise ConfigError(
                "model.max_sequence_length and model.detach_uncond apply to sd3 / flux pipelines; ShapeWorld has no "
                "T5 encoder and trains both CFG halves. Leave them at 0 / false."
            )
        if m.resolution:
            raise ConfigError("model.resolution is fixed for ShapeWorld (32 px); leave it at 0.")
        return load_shapeworld_adapter(folder, guidance_scale=cfg.guidance_scale, device=device, **extra)
    if m.resolution:
        extra.update(height=m.resolution, width=m.resolution)
    if m.max_sequence_length:
        extra.update(max_sequence_length=m.max_sequence_length)
    extra.update(detach_uncond=m.detach_uncond)
    if m.kind == "sd3":
        from flowrl.models.sd3 import SD3Adapter

        return SD3Adapter.from_folder(folder, guidance_scale=cfg.guidance_scale, device=device, **extra)
    from flowrl.models.flux import FluxAdapter

    return FluxAdapter.from_folder(
        folder, guidance_scale=cfg.guidance_scale, embedded_guidance=m.embedded_guidance, device=device, **extra
    )


def make_optimizer(cfg: OptimConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """AdamW, or SGD with momentum ``betas[0]`` (`optim.name`)."""
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.betas[0], weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)


def grid_name(cfg: ImageTrainConfig) -> str:
    """`method.grid`, or the grid of the model kind's pipeline when unset (`MODEL_GRIDS`)."""
    return cfg.method.grid or MODEL_GRIDS[cfg.model.kind]


def make_method(cfg: ImageTrainConfig, iteration: int, *, default_shift: float = 3.0) -> FlowMethod:
    """The method of this iteration; the model's time shift unless `method.kwargs.shift` sets one, and the time grid
    of `grid_name` unless `method.kwargs.grid` sets one."""
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.method.kwargs.items()}
    kwargs.setdefault("shift", default_shift)
    kwargs.setdefault("grid", grid_name(cfg))
    try:
        method = build_method(cfg.method.name, iteration=iteration, guard=cfg.method.guard, **kwargs)
    except TypeError as e:  # an unknown kwarg of the plan builder
        raise ConfigError(f"method.kwargs {sorted(kwargs)} do not fit method {cfg.method.name!r}: {e}") from e
    except ValueError as e:  # an unknown method, or GRPO-Guard on a method without step ratios
        raise ConfigError(str(e)) from e
    if method.forward is not None:  # options of the edge loss would be silently ignored: refuse them
        unused = [
            name
            for name, is_set in (
                ("method.clip_range", cfg.method.clip_range is not None),
                ("method.logprob_pool", cfg.method.logprob_pool != 1),
                ("method.kl_form", cfg.method.kl_form != "exact"),
                ("method.cps_logprob", cfg.method.cps_logprob != "gaussian"),
                ("train.step_split", cfg.train.step_split != "prompts"),
                ("method.sft_weight", cfg.method.sft_weight > 0),
                ("method.adaptive_clip_scale", cfg.method.adaptive_clip_scale > 0),
            )
            if is_set
        ]
        if unused:
            raise ConfigError(
                f"{', '.join(unused)} apply to the step log-probability loss; {cfg.method.name!r} trains on the "
                "forward process and has no step ratios. Leave them unset (its knobs are method.kwargs)."
            )
    if cfg.method.clip_range is not None:
        method = method._replace(clip_range=cfg.method.clip_range)
    if cfg.method.kl_beta is not None:
        method = method._replace(kl_beta=cfg.method.kl_beta)
    if cfg.method.adv_clip is not None:
        method = method._replace(advantage_kwargs={**method.advantage_kwargs, "clip": cfg.method.adv_clip})
    if cfg.method.adv_scale is not None:
        if method.advantage != "group":
            raise ConfigError(
                f"method.adv_scale applies to group advantages; {cfg.method.name!r} uses {method.advantage!r} "
                "(tree estimators normalise per node). Leave method.adv_scale unset for it."
            )
        method = method._replace(advantage_kwargs={**method.advantage_kwargs, "scale": cfg.method.adv_scale})
    if cfg.train.advantage_std == "global":
        if method.advantage != "group" or method.advantage_kwargs.get("scale", "group") not in ("group", "batch"):
            raise ConfigError(
                f"train.advantage_std=global divides group advantages by the iteration's reward std; "
                f"{cfg.method.name!r} uses {method.advantage!r} with scale "
                f"{method.advantage_kwargs.get('scale', 'group')!r}. Use train.advantage_std=group with it."
            )
        method = method._replace(advantage_kwargs={**method.advantage_kwargs, "scale": "batch"})
    if not cfg.train.unbiased_std:
        if method.advantage not in ("group", "per_sibling"):
            raise ConfigError(
                f"train.unbiased_std=false (numpy's biased std, flow_grpo / TempFlow) applies to the group and "
                f"per-sibling estimators; {cfg.method.name!r} uses {method.advantage!r}. Leave it true."
            )
        method = method._replace(advantage_kwargs={**method.advantage_kwargs, "unbiased": False})
    if cfg.method.logprob_pool != 1:
        method = method._replace(logprob_pool=cfg.method.logprob_pool)
    if cfg.method.kl_form != "exact":
        method = method._replace(kl_form=cfg.method.kl_form)
    if cfg.method.cps_logprob != "gaussian":
        method = method._replace(cps_logprob=cfg.method.cps_logprob)
    if cfg.method.sft_weight > 0 or cfg.method.adaptive_clip_scale > 0:
        base = method.hooks or TreeRPOHooks()
        clip_bounds = base.clip_bounds
        if cfg.method.adaptive_clip_scale > 0:
            clip_bounds = partial(reward_adaptive_clip_bounds, scale=cfg.method.adaptive_clip_scale)
        weight = cfg.method.sft_weight
        method = method._replace(hooks=TreeRPOHooks(sft_weight=lambda it: weight, clip_bounds=clip_bounds))
    return method


REWARD_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_rewards(cfg: ImageTrainConfig, device: torch.device) -> list:
    """The configured rewards: model-based ones (`rewards.MODEL_REWARDS`) on `reward.device` (default: the trainer's
    `device`) in `reward.dtype`; `reward.paths` gives a reward its checkpoint (``path=``)."""
    r = cfg.reward
    fns = []
    for name in r.names:
        kwargs: dict[str, Any] = {}
        if name in reward_lib.MODEL_REWARDS:
            kwargs.update(device=r.device or str(device), dtype=REWARD_DTYPES[r.dtype])
        if name in r.paths:
            if name not in reward_lib.MODEL_REWARDS and ":" not in name:
                raise ConfigError(
                    f"reward.paths sets a checkpoint for {name!r}, which loads none (checkpoints: "
                    f"{list(reward_lib.MODEL_REWARDS)} and 'package.module:factory' rewards). Remove the entry."
                )
            kwargs["path"] = r.paths[name]
        fns.append(reward_lib.load_reward(name, **kwargs))
    return fns


def compute_rewards(fns: list, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
    """`(L, K)` rewards of the leaves; wrong shapes raise, NaN / inf are left for the caller to count."""
    cols = [reward_lib.check_reward_output(fn.name, fn(images, prompts, None), len(prompts)) for fn in fns]
    return torch.stack(cols, dim=1)


def global_scale(method: FlowMethod) -> bool:
    """Whether the method's group advantages divide by the std of every reward of the iteration (all processes)."""
    return method.advantage_kwargs.get("scale") == "batch"


def leaf_advantages(
    cfg: ImageTrainConfig,
    method: FlowMethod,
    tree: Tree,
    rewards: torch.Tensor,
    *,
    batch_std: list[float] | None = None,
) -> torch.Tensor:
    """`(E,)` edge advantages from `(L, K)` leaf rewards, in the configured aggregation order; forward-process
    methods credit samples, not edges: `(L,)` group advantages of the leaves.

    With the batch scale (``train.advantage_std=global``, DiffusionNFT, AWM) `batch_std` holds the std of every
    reward of the iteration over all processes (`iteration_reward_std`): one entry for the weighted sum, or one per
    reward with ``normalize_then_sum``; None there gives centred, unscaled placeholders (`collect` runs before the
    other processes' rewards are known)."""
    weights = torch.tensor(cfg.reward.weights)
    kwargs = dict(method.advantage_kwargs)
    if global_scale(method) and batch_std is None:
        kwargs.update(scale="none", clip=None)
    if method.forward is not None:
        estimate = partial(group_advantages, group_ids=tree.prompt[tree.leaves], **kwargs)
    else:
        estimate = partial(edge_advantages, method.advantage, tree, **kwargs)

    def estimate_k(r: torch.Tensor, k: int, **extra) -> torch.Tensor:  # with the k-th batch std when there is one
        return estimate(r, **extra) if batch_std is None else estimate(r, batch_std=batch_std[k], **extra)

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


def global_credit(
    cfg: ImageTrainConfig, method: FlowMethod, rollouts: list[PromptRollout], world: int
) -> list[PromptRollout]:
    """Advantages over the std of the whole iteration's rewards (`iteration_reward_std`), the per-prompt means kept;
    edges with a zero advantage leave the mask, as in `edge_mask`."""
    stds = iteration_reward_std(cfg, rollouts, world)
    out = []
    for ro in rollouts:
        adv = leaf_advantages(cfg, method, ro.tree, ro.rewards, batch_std=stds)
        mask = ro.mask if method.forward is not None else ro.mask & (adv != 0)
        out.append(ro._replace(adv=adv, mask=mask))
    return out


def edge_mask(
    method: FlowMethod, tree: Tree, adv: torch.Tensor, *, iteration: int, generator: torch.Generator
) -> torch.Tensor:
    """Edges that enter the loss: nonzero advantage (flow_grpo / DAPO filter), DanceGRPO's timestep subset,
    BranchGRPO depth pruning."""
    e = tree.edges
    mask = adv != 0  # with the iteration-wide std the advantages come later: `global_credit` applies this term
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


def trained_units(rollout_: PromptRollout) -> int:
    """What one prompt contributes to an optimizer step's loss normaliser: its trained edges, or its noised rows."""
    if rollout_.forward is not None:
        return rollout_.forward.rows.sample.numel()
    return int(rollout_.mask.sum())


def micro_batches(rollout_: PromptRollout, size: int) -> list[torch.Tensor]:
    """Masked edge indices in chunks of at most `size`, never splitting the children of one parent."""
    idx = torch.nonzero(rollout_.mask).flatten()
    if idx.numel() == 0:
        return []
    parents = rollout_.tree.edges.parent[idx]
    idx = idx[torch.argsort(parents, stable=True)]
    parents = rollout_.tree.edges.parent[idx]
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


def all_reduce_sum(t: torch.Tensor, world: int) -> torch.Tensor:
    """Sum `t` over processes, in place. NCCL (accelerate's GPU backend) reduces CUDA tensors only, so CPU scalars
    (edge and prompt counts) travel through the current GPU there."""
    if world > 1:
        if t.device.type == "cpu" and torch.distributed.get_backend() == "nccl":
            on_gpu = t.to(torch.device("cuda", torch.cuda.current_device()))
            torch.distributed.all_reduce(on_gpu, op=torch.distributed.ReduceOp.SUM)
            t.copy_(on_gpu.cpu())
        else:
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
    return t


def gather_objects(obj, world: int) -> list:
    """Every process's `obj` (small, picklable: metric sums, rewards), in rank order."""
    if world == 1:
        return [obj]
    out = [None] * world
    torch.distributed.all_gather_object(out, obj)
    return out


def _merge_sums(parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    merged: dict[str, torch.Tensor] = {}
    for part in parts:
        for key, v in part.items():
            merged[key] = merged.get(key, torch.zeros(())) + v
    return merged


def _should_stop(cfg: ImageTrainConfig, *, minutes: float, nfe_total: float, world: int) -> bool:
    """Budget check (wall time, network evaluations); any process over budget stops all of them."""
    t = cfg.train
    over = (t.time_limit_minutes > 0 and minutes >= t.time_limit_minutes) or (t.max_nfe > 0 and nfe_total >= t.max_nfe)
    return any(gather_objects(bool(over), world))


# ----------------------------------------------------------------------------------------------------- phases


@torch.no_grad()
def collect(
    cfg: ImageTrainConfig,
    adapter: ImageAdapter,
    method: FlowMethod,
    reward_fns: list,
    prompts: list[tuple[int, str]],
    iteration: int,
) -> tuple[list[PromptRollout], dict[str, float]]:
    """Roll out every (global index, prompt), score the leaves, assign advantages. Prompts with a non-finite reward
    are skipped and counted (never trained on).

    Up to `train.rollout_batch` prompts share one rollout (every step one forward over all their states) and one
    reward call; each prompt's initial and SDE noise come from its own generator, so a prompt samples what it samples
    alone, on any number of processes."""
    out = []
    stats = {"nfe_rollout": 0.0, "skipped_prompts": 0.0, "time_rollout": 0.0, "time_reward": 0.0, "samples": 0.0}
    for start in range(0, len(prompts), cfg.train.rollout_batch):
        batch = prompts[start : start + cfg.train.rollout_batch]
        gens = [_generator(cfg.train.seed, iteration, index) for index, _ in batch]
        scored = _rollout_batch(cfg, adapter, method, reward_fns, batch, gens, stats)
        for (index, prompt), gen, tree, rewards in scored:
            out.extend(_credit(cfg, adapter, method, index, prompt, gen, tree, rewards, iteration, stats))
    return out, stats


def _rollout_batch(
    cfg: ImageTrainConfig,
    adapter: ImageAdapter,
    method: FlowMethod,
    reward_fns: list,
    batch: list[tuple[int, str]],
    gens: list[torch.Generator],
    stats: dict[str, float],
) -> list[tuple[tuple[int, str], torch.Generator, Tree, torch.Tensor]]:
    """One batched rollout and reward call for `batch`: per prompt its tree and `(L, K)` leaf rewards."""
    R = method.plan.num_roots
    noise = torch.cat([torch.randn((1, R, *adapter.latent_shape), generator=g) for g in gens])  # (P, R, C, H, W)
    cond = adapter.encode([prompt for _, prompt in batch])
    t0 = time.perf_counter()
    tree = rollout(adapter.velocity, method.plan, cond, noise, generator=gens if len(gens) > 1 else gens[0])
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


def _credit(
    cfg: ImageTrainConfig,
    adapter: ImageAdapter,
    method: FlowMethod,
    index: int,
    prompt: str,
    gen: torch.Generator,
    tree: Tree,
    rewards: torch.Tensor,
    iteration: int,
    stats: dict[str, float],
) -> list[PromptRollout]:
    """One prompt's advantages and trained-edge mask (or forward-process rows); [] when a reward is NaN / inf."""
    cond = adapter.encode([prompt])
    if not torch.isfinite(rewards).all():
        stats["skipped_prompts"] += 1
        print(
            f"[flowrl] iteration {iteration}: a reward returned NaN/inf for {prompt!r}; prompt skipped.",
            file=sys.stderr,
        )
        return []
    adv = leaf_advantages(cfg, method, tree, rewards)
    if method.forward is not None:  # every sample is trained on; r is set once all advantages are known
        fwd = forward_data(cfg, adapter, method, tree, cond, gen)
        stats["nfe_rollout"] += fwd.rows.sample.numel()  # the sampling policy's velocity on every row
        return [PromptRollout(index, prompt, cond, tree, rewards, adv, torch.ones_like(adv, dtype=bool), fwd)]
    placeholder = torch.ones_like(adv) if global_scale(method) else adv  # global_credit masks zero advantages
    mask = edge_mask(method, tree, placeholder, iteration=iteration, generator=gen)
    return [PromptRollout(index, prompt, cond, tree, rewards, adv, mask)]


def forward_data(
    cfg: ImageTrainConfig, adapter: ImageAdapter, method: FlowMethod, tree: Tree, cond: Any, generator: torch.Generator
) -> ForwardData:
    """Noised rows of the prompt's samples and the sampling policy's velocity on them (runs under the old weights,
    inside `collect`); `r` is left for `forward_credit`."""
    rows = forward_rows(
        tree.x[tree.leaves], method.plan.sigmas[:-1], per_sample=method.forward.per_sample, generator=generator
    )
    one = torch.zeros(rows.sample.numel(), dtype=torch.long)
    v_old = torch.cat(
        [
            adapter.velocity(rows.xs[mb], rows.sigma[mb], take_rows(cond, one[mb]))
            for mb in torch.arange(one.numel()).split(cfg.train.micro_batch_edges)
        ]
    )  # (B, C, H, W)
    return ForwardData(rows, v_old, torch.empty(0))


def forward_credit(rollouts: list[PromptRollout], method: FlowMethod) -> list[PromptRollout]:
    """The optimality probability `r` of every noised row from its sample's (final) advantage."""
    out = []
    for ro in rollouts:
        r = optimality_probability(ro.adv[ro.forward.rows.sample.cpu()], adv_max=method.forward.adv_max)
        out.append(ro._replace(forward=ro.forward._replace(r=r.to(ro.forward.v_old.device))))
    return out


def optimizer_step_loss(
    cfg: ImageTrainConfig,
    adapter: ImageAdapter,
    method: FlowMethod,
    objective,
    chunk: list[PromptRollout],
    norm: Normalizer,
    iteration: int,
    num_prompts: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Forward + backward of every micro-batch of one optimizer step; returns summed metrics (for averaging).

    `num_prompts` is the global number of prompts in the step (normaliser of the LayerTuning-RL term)."""
    if method.forward is not None:
        return forward_step_loss(cfg, adapter, method, chunk, norm)
    sums: dict[str, torch.Tensor] = {}
    for ro in chunk:
        for idx in micro_batches(ro, cfg.train.micro_batch_edges):
            pool = method.logprob_pool
            cps = method.cps_logprob
            current = evaluate_edges(adapter.velocity, ro.tree, ro.cond, idx, pool=pool, cps_logprob=cps)
            reference = None
            if method.kl_beta > 0:
                with adapter.reference():
                    reference = evaluate_edges(
                        adapter.reference_velocity, ro.tree, ro.cond, idx, pool=pool, cps_logprob=cps
                    )
            weights = None
            if method.noise_aware or method.guard:
                weights = step_weights(ro.tree, idx, noise_aware=method.noise_aware, guard=method.guard)
            batch = policy_batch(
                ro.tree,
                current,
                ro.adv,
                idx,
                weights=weights,
                guard=method.guard,
                reference=reference,
                pool=pool,
                kl_form=method.kl_form,
                cps_logprob=cps,
            )
            obj = objective
            if method.hooks is not None:  # Dynamic-TreeRPO: per-edge clip bounds from a hook
                lo, hi = method.hooks.clip_bounds(batch.adv, clip_range=method.clip_range)
                obj = objective._replace(surrogate=partial(clipped_surrogate, eps_low=lo, eps_high=hi))
            loss, metrics = policy_loss(obj, batch, norm=norm)
            loss.backward()
            n = torch.tensor(float(idx.numel()))
            for k, v in metrics.items():  # metrics are micro-batch means: weight by edges to average later
                sums[k] = sums.get(k, torch.zeros(())) + v.detach() * n
            sums["edges"] = sums.get("edges", torch.zeros(())) + n
            sums["nfe_train"] = sums.get("nfe_train", torch.zeros(())) + current.nfe
            # per-step importance-ratio statistics from d = r - 1 in float64 (E[r^2] - E[r]^2 cancels in fp32)
            dev = (current.logp.detach().double() - batch.old_logp.flatten().double()).exp() - 1.0  # (E',)
            steps = ro.tree.edges.step[idx]
            for s in torch.unique(steps).tolist():
                sel = steps == s
                for name, value in (("sum", dev[sel].sum()), ("sq", (dev[sel] ** 2).sum()), ("n", sel.sum())):
                    key = f"ratio_{name}/step_{s}"
                    sums[key] = sums.get(key, torch.zeros((), dtype=torch.float64)) + value
    if method.hooks is not None and method.hooks.sft_weight(iteration) > 0:
        sums.update(layer_tuning_backward(cfg, adapter, method, chunk, iteration, num_prompts))
    return sums


def forward_step_loss(
    cfg: ImageTrainConfig, adapter: ImageAdapter, method: FlowMethod, chunk: list[PromptRollout], norm: Normalizer
) -> dict[str, torch.Tensor]:
    """Forward + backward of a forward-process method's rows in one optimizer step: ``sum_rows loss / global rows``,
    plus ``kl_beta *`` the velocity MSE to the reference; returns summed metrics ("edges" counts the rows)."""
    sums: dict[str, torch.Tensor] = {}

    def add(key: str, value: torch.Tensor | float) -> None:
        sums[key] = sums.get(key, torch.zeros(())) + value

    for ro in chunk:
        f = ro.forward
        prompt_row = torch.zeros(f.rows.sample.numel(), dtype=torch.long)
        for mb in torch.arange(prompt_row.numel()).split(cfg.train.micro_batch_edges):
            rows = ForwardRows(*(t[mb.to(t.device)] for t in f.rows))
            cond = take_rows(ro.cond, prompt_row[mb])
            v = adapter.velocity(rows.xs, rows.sigma, cond)  # (b, C, H, W)
            policy = method.forward.loss(v, f.v_old[mb], rows, f.r[mb])  # (b,)
            loss = policy.sum()
            if method.kl_beta > 0:
                with adapter.reference():
                    v_ref = adapter.reference_velocity(rows.xs, rows.sigma, cond)
                kl = ((v.float() - v_ref.float()) ** 2).flatten(1).mean(1)  # (b,)
                loss = loss + method.kl_beta * kl.sum()
                add("kl", kl.detach().sum().cpu())
                add("nfe_train", float(len(mb)))
            (loss / norm.num_tokens).backward()
            add("loss", policy.detach().sum().cpu())
            add("r_mean", f.r[mb].sum().cpu())
            add("edges", float(len(mb)))
            add("nfe_train", float(len(mb)))
    return sums


def layer_tuning_backward(
    cfg: ImageTrainConfig,
    adapter: ImageAdapter,
    method: FlowMethod,
    chunk: list[PromptRollout],
    iteration: int,
    num_prompts: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Dynamic-TreeRPO LayerTuning-RL (our reading, `flowrl/train/layer_tuning.py`): backward of
    ``sum_p lambda_p L_p / P`` over this process's prompts, P the global prompts of the optimizer step."""
    base = method.hooks.sft_weight(iteration)
    total_weight, total_loss = torch.zeros(()), torch.zeros(())
    for ro in chunk:
        weight = prompt_weight(ro.rewards[:, 0], base=base)
        if weight == 0.0:
            continue
        loss = flow_matching_loss(
            adapter.conditional_velocity,
            adapter.encode_images,
            ro.prompt,
            ro.cond,
            num_targets=cfg.method.sft_targets,
            image_size=adapter.height,
            generator=_generator(cfg.train.seed, iteration, 20_011, ro.index),
        )
        (weight * loss / num_prompts).backward()
        total_weight += weight
        total_loss += loss.detach() * weight
    return {
        "sft_weight_sum": total_weight,
        "sft_loss_weighted_sum": total_loss,
        "sft_prompts": torch.tensor(float(len(chunk))),
    }


def step_chunks(
    cfg: ImageTrainConfig, method: FlowMethod, rollouts: list[PromptRollout], position: dict[int, int]
) -> list[list[PromptRollout]]:
    """What each optimizer step of one inner epoch trains on, in order (the same count on every process).

    ``train.step_split=prompts``: `steps_per_epoch` steps, each on a share of the prompts (shuffled by `position`).
    ``denoising_step``: one step per denoising step of the grid, each on every prompt's edges at that step, masked
    to it (G2RPO `train_g2rpo_hps.py`: one optimizer step per probe step k, 8 per iteration); steps without an
    edge on any process are skipped by the caller."""
    ordered = sorted(rollouts, key=lambda ro: position[ro.index])
    if cfg.train.step_split == "denoising_step":
        return [
            [ro._replace(mask=ro.mask & (ro.tree.edges.step == s).to(ro.mask.device)) for ro in ordered]
            for s in range(method.plan.num_inference_steps)
        ]
    n = cfg.train.steps_per_epoch
    return [[ro for ro in ordered if position[ro.index] % n == k] for k in range(n)]


def update(
    cfg: ImageTrainConfig,
    adapter: ImageAdapter,
    method: FlowMethod,
    rollouts: list[PromptRollout],
    optimizer: torch.optim.Optimizer,
    ema: EMA | None,
    iteration: int,
    world: int,
    old: EMA | None = None,
) -> dict[str, float]:
    """Inner epochs over the iteration's rollouts; returns averaged metrics. `old` is a forward-process method's
    lagged sampling policy, moved towards the trained weights after every optimizer step."""
    sharded = cfg.train.sharding == "fsdp"
    variant = get_variant("flow_grpo", clip_range=method.clip_range, beta=method.kl_beta, guard=method.guard)
    params = adapter.trainable_parameters()
    totals: dict[str, torch.Tensor] = {}
    n_prompts = cfg.train.prompts_per_iteration
    for epoch in range(cfg.train.inner_epochs):
        order = torch.randperm(n_prompts, generator=_generator(cfg.train.seed, iteration, 10_007, epoch)).tolist()
        position = {p: i for i, p in enumerate(order)}
        for k, chunk in enumerate(step_chunks(cfg, method, rollouts, position)):
            edges = torch.tensor(float(sum(trained_units(ro) for ro in chunk)))
            edges = all_reduce_sum(edges, world)  # global trained edges (rows) of this optimizer step
            sft = method.hooks is not None and method.hooks.sft_weight(iteration) > 0
            if edges.item() == 0 and not sft:  # no advantage signal anywhere and nothing else to learn from
                continue
            norm = Normalizer(num_tokens=edges, num_sequences=edges)
            optimizer.zero_grad(set_to_none=False)
            num_prompts = all_reduce_sum(torch.tensor(float(len(chunk))), world)
            idle = 0  # sharded: zero-loss passes that keep this rank's FSDP collectives in step with the busiest rank
            if sharded:  # FSDP gathers every block in each forward: all ranks run as many passes as the busiest one
                passes = sum(len(micro_batches(ro, cfg.train.micro_batch_edges)) for ro in chunk)
                idle = sharding.max_over_ranks(passes) - passes  # collective: before any forward of this step
                if idle and not rollouts:
                    raise RuntimeError(
                        f"Iteration {iteration}: every prompt of process {torch.distributed.get_rank()} was skipped "
                        "(non-finite rewards), so it has no input for the forward passes the sharded model needs on "
                        "every rank. Fix the reward's NaN/inf, or train with train.sharding=none."
                    )
            sums = optimizer_step_loss(cfg, adapter, method, variant.objective, chunk, norm, iteration, num_prompts)
            for _ in range(idle):  # forward and backward of a zero loss: the same collectives, no gradient
                ro = rollouts[0]
                mean = evaluate_edges(adapter.velocity, ro.tree, ro.cond, torch.zeros(1, dtype=torch.long)).mean
                (0.0 * mean.sum()).backward()
            for p in params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                if not sharded:  # FSDP summed the gradients over ranks in the backward pass
                    all_reduce_sum(p.grad, world)
            if cfg.optim.grad_clip > 0:
                clip = sharding.clip_grad_norm_ if sharded else torch.nn.utils.clip_grad_norm_
                sums["grad_norm"] = clip(params, cfg.optim.grad_clip).detach() * sums.get("edges", torch.zeros(()))
            optimizer.step()
            if ema is not None:
                ema.update()
            if old is not None:
                step = (iteration * cfg.train.inner_epochs + epoch) * cfg.train.steps_per_epoch + k
                old.update(decay=method.forward.old_decay(step))
            for key, v in sums.items():
                totals[key] = totals.get(key, torch.zeros(())) + v
    return _average(_merge_sums(gather_objects(totals, world)))


def _average(totals: dict[str, torch.Tensor]) -> dict[str, float]:
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


# ----------------------------------------------------------------------------------------------------- evaluation


@torch.no_grad()
def sample_ode(cfg: ImageTrainConfig, adapter: ImageAdapter, prompts: list[str], seed: int) -> torch.Tensor:
    """Euler ODE samples with the evaluation CFG, one per prompt, noise seeded by (seed, batch): `(P, 3, H, W)`."""
    e = cfg.eval
    plan = RolloutPlan(
        named_grid(grid_name(cfg), e.num_inference_steps, shift=adapter.default_shift),
        tuple(StepSpec() for _ in range(e.num_inference_steps)),
    )
    guidance, adapter.guidance_scale = adapter.guidance_scale, e.guidance_scale
    try:
        images = []
        for start in range(0, len(prompts), 50):
            batch = prompts[start : start + 50]
            noise = torch.randn((len(batch), 1, *adapter.latent_shape), generator=_generator(99, seed, start))
            tree = rollout(adapter.velocity, plan, adapter.encode(batch), noise)  # one leaf per prompt
            images.append(adapter.decode(tree.x[tree.leaves]))
    finally:
        adapter.guidance_scale = guidance
    return torch.cat(images)


def evaluate(
    cfg: ImageTrainConfig,
    adapter: ImageAdapter,
    prompts: list[str],
    reward_fns: list,
    prefixes: list[str] | None = None,
) -> tuple[EvalSummary, torch.Tensor]:
    """Score ODE samples of the same prompts and seeds every time (a paired comparison across evaluations).

    ShapeWorld prompts are graded by its grader (strict accuracy and partial credit per family; `prefixes` puts a
    prompt's results under its split, `flowrl.train.shapes_eval`); prompts from `eval.prompts_file` are scored by
    the configured rewards (mean per reward, "overall" = weighted sum). Returns the summary and the images of the
    first seed (for the grid)."""
    strict: dict[str, list[float]] = {}
    score: dict[str, list[float]] = {}
    first = None
    for seed in cfg.eval.seeds:
        images = sample_ode(cfg, adapter, prompts, seed)  # (P, 3, H, W)
        first = images if first is None else first
        if cfg.model.kind == "shapeworld":  # ShapeWorld prompts (the split sets or a file) are graded
            by_split = grade_by_split(images, prompts, prefixes or [""] * len(prompts))
            for into, part in zip((strict, score), by_split, strict=True):
                for key, values in part.items():
                    into.setdefault(key, []).extend(values)
        else:
            rewards = compute_rewards(reward_fns, images, prompts)  # (P, K)
            for k, fn in enumerate(reward_fns):
                score.setdefault(fn.name, []).extend(rewards[:, k].tolist())
            total = weighted_sum(rewards, weights=torch.tensor(cfg.reward.weights))
            score.setdefault("overall", []).extend(total.tolist())
    summary = EvalSummary(
        {k: sum(v) / len(v) for k, v in strict.items()},
        {k: sum(v) / len(v) for k, v in score.items()},
        len(score["overall"]),
        strict or None,
    )
    return summary, first


def headline(summary: EvalSummary) -> tuple[str, float]:
    """The number a run is judged by: ShapeWorld held-out strict accuracy, else the mean weighted eval reward."""
    if "overall" in summary.strict:
        return "held-out strict accuracy", summary.strict["overall"]
    return "eval reward", summary.score["overall"]


def _eval_metrics(summary: EvalSummary) -> dict[str, float]:
    out = {f"eval/strict/{k}": v for k, v in summary.strict.items()}
    out.update({f"eval/score/{k}": v for k, v in summary.score.items()})
    return out


def _save_grid(run_dir: Path, iteration: int, prompts: list[str], images: torch.Tensor, n: int, graded: bool) -> None:
    pick = list(range(0, len(prompts), max(1, len(prompts) // n)))[:n]
    imgs = images[pick]
    captions = [prompts[i] for i in pick]
    if graded:  # ShapeWorld: say which samples pass the grader
        passed = grade(imgs, captions).strict.tolist()
        captions = [("PASS " if ok else "fail ") + c for c, ok in zip(captions, passed, strict=True)]
    (run_dir / "samples").mkdir(exist_ok=True)
    save_image_grid(imgs, run_dir / "samples" / f"eval_{iteration:05d}.png", nrow=5, captions=captions)


# ----------------------------------------------------------------------------------------------------- the loop


class TrainResult(NamedTuple):
    run_dir: Path
    base: EvalSummary | None
    final: EvalSummary | None
    iterations: int


def train(cfg: ImageTrainConfig, *, resume: Path | None = None, log_every_eval: bool = True) -> TrainResult:
    """Run (or resume) an image GRPO run and return where it lives and its base / final held-out accuracy."""
    from accelerate import Accelerator, DistributedType  # imported here: `flowrl train --help` stays fast

    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    rank, world = accelerator.process_index, accelerator.num_processes
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        raise ConfigError(
            "The trainer does not drive DeepSpeed (configs/accelerate/deepspeed_zero2.yaml is untested, "
            "docs/scaling.md): launch with configs/accelerate/ddp.yaml, or shard full fine-tuning with "
            "configs/accelerate/fsdp_sd3.yaml / fsdp_flux.yaml (train.sharding=fsdp)."
        )
    if accelerator.distributed_type == DistributedType.FSDP and cfg.train.sharding == "none":
        cfg = replace(cfg, train=replace(cfg.train, sharding="fsdp"))  # an FSDP launch config asks for sharding
    sharded = cfg.train.sharding == "fsdp"
    if cfg.train.prompts_per_iteration % world:
        raise ConfigError(
            f"train.prompts_per_iteration ({cfg.train.prompts_per_iteration}) must be divisible by the "
            f"number of processes ({world})."
        )
    main_process = accelerator.is_main_process
    t_start = time.perf_counter()

    with seeded_global_rng(cfg.train.seed, LORA_INIT):  # peft's LoRA init draws from torch's global generator
        adapter = build_adapter(cfg, accelerator.device)
    if sharded:  # before the optimizer and the EMA: they hold the sharded parameters
        sharding.shard_transformer(adapter.transformer, device_type=accelerator.device.type)
    params = adapter.trainable_parameters()
    optimizer = make_optimizer(cfg.optim, params)
    ema = EMA(params, decay=cfg.train.ema_decay) if cfg.train.ema_decay > 0 else None
    forward_method = make_method(cfg, 0).forward is not None
    if forward_method and sharded:
        raise ConfigError(
            f"{cfg.method.name!r} trains on the forward process, which train.sharding=fsdp does not run yet; use "
            "train.sharding=none (LoRA, or full fine-tuning that fits one device)."
        )
    old = EMA(params, decay=0.0) if forward_method else None  # the lagged sampling policy (DiffusionNFT theta_old)
    reward_fns = load_rewards(cfg, accelerator.device)
    if cfg.model.kind != "shapeworld" and not (cfg.train.prompts_file and cfg.eval.prompts_file):
        raise ConfigError(
            f"model.kind={cfg.model.kind!r} needs train.prompts_file and eval.prompts_file (ShapeWorld's prompt "
            "generator and grader fit only the ShapeWorld model)."
        )
    graded = cfg.model.kind == "shapeworld"  # strict accuracy by the grader, also on a prompts file's prompts
    if graded and not cfg.eval.prompts_file:
        held_out, prefixes = shapeworld_eval_set(
            heldout_per_family=cfg.eval.prompts_per_family, train_per_family=cfg.eval.train_prompts_per_family
        )
    else:
        held_out = read_prompts_file(cfg.eval.prompts_file)
        prefixes = [""] * len(held_out) if graded else None
        adapter.encode(held_out)  # fail now, naming any word the model's tokenizer does not know
    user_prompts = read_prompts_file(cfg.train.prompts_file) if cfg.train.prompts_file else []
    if user_prompts:
        adapter.encode(user_prompts)  # fail now, naming any word the model's tokenizer does not know

    start_iteration, base, nfe_total = 0, None, 0.0
    if resume is not None:
        ckpt_path = latest_checkpoint(resume)
        if ckpt_path is None:
            raise FileNotFoundError(f"No checkpoint in {resume}/checkpoints to resume from.")
        ckpt = load_checkpoint(ckpt_path)
        if sharded:  # the checkpoint holds full tensors (every rank read them): keep this rank's shards
            adapter.load_trained_state(sharding.shard_state(ckpt["model"], like=adapter.transformer.state_dict()))
            optimizer.load_state_dict(sharding.shard_optimizer_state(ckpt["optimizer"], params))
        else:
            adapter.load_trained_state(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
        if ema is not None and ckpt["ema"] is not None:
            ema.load_state_dict(sharding.shard_state(ckpt["ema"], like=ema.state_dict()) if sharded else ckpt["ema"])
        if old is not None and ckpt["old_policy"] is not None:
            old.load_state_dict(ckpt["old_policy"])
        if ckpt["rng"] is not None:
            restore_rng_state(ckpt["rng"])
        start_iteration = int(ckpt["trainer"]["iteration"])
        nfe_total = float(ckpt["trainer"]["nfe_total"])
        if ckpt["trainer"].get("base_strict") is not None:
            base = EvalSummary(
                ckpt["trainer"]["base_strict"],
                ckpt["trainer"]["base_score"],
                int(ckpt["trainer"]["base_count"]),
                ckpt["trainer"].get("base_outcomes"),
            )
        run_dir = Path(resume)
    else:
        name = cfg.run.name or None
        run_dir = create_run_dir(cfg.run.root, name) if main_process else Path(cfg.run.root)
    if main_process:
        write_config(run_dir, dump_yaml(cfg))
    # metrics of iteration i are logged at step i + 1: on resume, drop what the abandoned continuation wrote after
    resume_step = start_iteration + 1 if resume is not None else None
    logger = MetricsLogger(run_dir, tensorboard=cfg.run.tensorboard, resume_step=resume_step) if main_process else None

    def run_eval(iteration: int) -> EvalSummary:
        context = ema.swapped() if ema is not None else contextlib.nullcontext()
        with context:
            if cfg.eval.resolution:  # sample at the evaluation resolution, then go back to the training one
                adapter.set_resolution(height=cfg.eval.resolution, width=cfg.eval.resolution)
            try:
                summary, images = evaluate(cfg, adapter, held_out, reward_fns, prefixes)
            finally:
                if cfg.eval.resolution:
                    train_px = cfg.model.resolution or DEFAULT_RESOLUTION
                    adapter.set_resolution(height=train_px, width=train_px)
        if main_process:
            _save_grid(run_dir, iteration, held_out, images, cfg.eval.grid_prompts, graded)
        return summary

    base_key = None
    if (
        base is None and cfg.eval.at_start and cfg.eval.cache_base and not sharded
    ):  # same model + settings, same numbers
        settings = {
            "eval": asdict(cfg.eval),
            "prompts": held_out,
            "prefixes": prefixes,
            "grid": grid_name(cfg),
            "shift": adapter.default_shift,
            "kind": cfg.model.kind,
            "rewards": [cfg.reward.names, cfg.reward.weights],
        }
        base_key = eval_cache.cache_key(resolve_model_path(cfg.model.path), settings)
        cached = eval_cache.load(cfg.run.root, base_key)
        if cached is not None:
            base = EvalSummary(cached["strict"], cached["score"], int(cached["count"]), cached["outcomes"])
            if main_process:
                logger.log(0, _eval_metrics(base))
                print(
                    f"[flowrl] base model evaluation reused from {cfg.run.root}/{eval_cache.CACHE_DIR}",
                    file=sys.stderr,
                )
    if base is None and (main_process or sharded) and cfg.eval.at_start:  # sharded: every rank runs the forwards
        base = run_eval(0)
        if main_process and base_key is not None:
            eval_cache.store(cfg.run.root, base_key, base._asdict())
        if main_process:
            logger.log(0, _eval_metrics(base))
            name, value = headline(base)
            print(
                f"[flowrl] base model: {name} {value:.4f} ({base.count} samples)",
                file=sys.stderr,
            )

    def checkpoint(next_iteration: int) -> None:
        if sharded:  # gathering the full tensors is collective: every rank takes part, rank 0 writes them
            model_state = sharding.gather_state(adapter.trained_state())
            optimizer_state = sharding.gather_optimizer_state(optimizer.state_dict())
            ema_state = sharding.gather_state(ema.state_dict()) if ema is not None else None
        if not main_process:
            return
        if not sharded:
            model_state, optimizer_state = adapter.trained_state(), optimizer.state_dict()
            ema_state = ema.state_dict() if ema is not None else None
        trainer = {"iteration": next_iteration, "nfe_total": nfe_total}
        if base is not None:
            trainer.update(
                base_strict=base.strict, base_score=base.score, base_count=base.count, base_outcomes=base.outcomes
            )
        save_checkpoint(
            run_dir,
            next_iteration,
            {
                "model": model_state,
                "optimizer": optimizer_state,
                "ema": ema_state,
                "old_policy": old.state_dict() if old is not None else None,
                "rng": capture_rng_state(),
                "trainer": trainer,
                "config": dump_yaml(cfg),
            },
            keep_last=cfg.run.keep_last,
        )

    final = None
    done = start_iteration
    bar = progress(cfg.train.iterations - start_iteration, desc="flowrl train", disable=not main_process)
    try:
        for iteration in range(start_iteration, cfg.train.iterations):
            t_it = time.perf_counter()
            method = make_method(cfg, iteration, default_shift=adapter.default_shift)
            if user_prompts:
                prompts = file_prompts(
                    user_prompts, cfg.train.prompts_per_iteration, seed=cfg.train.seed, iteration=iteration
                )
            else:
                prompts = iteration_prompts(
                    cfg.train.prompts_per_iteration,
                    families=cfg.train.families,
                    seed=cfg.train.seed,
                    iteration=iteration,
                )
            local = [(i, p) for i, p in enumerate(prompts) if i % world == rank]
            with old.swapped() if old is not None else contextlib.nullcontext():  # sample with theta_old
                rollouts, stats = collect(cfg, adapter, method, reward_fns, local, iteration)
            if global_scale(method):  # every process's rewards are known only now
                rollouts = global_credit(cfg, method, rollouts, world)
            if old is not None:
                rollouts = forward_credit(rollouts, method)
            t_train = time.perf_counter()
            metrics = update(cfg, adapter, method, rollouts, optimizer, ema, iteration, world, old)
            counts = _merge_sums(gather_objects({k: torch.tensor(v) for k, v in stats.items()}, world))
            metrics.update({k: float(v) for k, v in counts.items()})  # NFE and skips summed, times summed over ranks
            metrics["time_train"] = time.perf_counter() - t_train
            local_rewards = [ro.rewards for ro in rollouts]
            gathered = [r for part in gather_objects(local_rewards, world) for r in part]
            all_rewards = torch.cat(gathered) if gathered else torch.zeros(0, len(cfg.reward.names))
            for k, name in enumerate(cfg.reward.names):
                metrics[f"reward/{name}/mean"] = float(all_rewards[:, k].mean()) if len(all_rewards) else math.nan
            total = weighted_sum(all_rewards, weights=torch.tensor(cfg.reward.weights)) if len(all_rewards) else None
            metrics["reward_mean"] = float(total.mean()) if total is not None else math.nan
            metrics["reward_std"] = float(total.std()) if total is not None and total.numel() > 1 else math.nan
            metrics["time_iteration"] = time.perf_counter() - t_it
            nfe_total += metrics["nfe_rollout"] + metrics.get("nfe_train", 0.0)
            metrics["nfe_total"] = nfe_total
            done = iteration + 1
            stop = _should_stop(cfg, minutes=(time.perf_counter() - t_start) / 60, nfe_total=nfe_total, world=world)
            last = done == cfg.train.iterations or stop
            if sharded and not main_process and (done % cfg.eval.every == 0 or last):
                run_eval(done)  # FSDP: every rank takes part in the evaluation's forward passes; rank 0 logs
            if main_process:
                if done % cfg.eval.every == 0 or last:
                    t_eval = time.perf_counter()
                    summary = run_eval(done)
                    metrics.update(_eval_metrics(summary))
                    metrics["time_eval"] = time.perf_counter() - t_eval
                    final = summary
                metrics["wall_minutes"] = (time.perf_counter() - t_start) / 60
                logger.log(done, metrics)
                bar.set_postfix(reward=f"{metrics['reward_mean']:.3f}")
                bar.update(1)
            if done % cfg.run.checkpoint_every == 0 or last:
                checkpoint(done)
            if stop:
                if main_process:
                    print(
                        f"[flowrl] budget reached after {done} iterations ({metrics['wall_minutes']:.1f} min, "
                        f"{nfe_total:.0f} NFE).",
                        file=sys.stderr,
                    )
                break
    finally:
        bar.close()
        if logger is not None:
            logger.close()
    # with EMA, final/ and lora/ hold the EMA copy, the weights every evaluation used (flow_grpo `save_ckpt` swaps the
    # EMA in before save_pretrained); the raw weights stay in the last checkpoint's model.safetensors
    with ema.swapped() if ema is not None else contextlib.nullcontext():
        with sharding.full_parameters(adapter.transformer) if sharded else contextlib.nullcontext():
            if main_process:  # sharded: rank 0 holds the gathered full weights here; the model card goes beside them
                saved = adapter.save_trained(run_dir)
                write_model_card(saved, cfg, run_dir=run_dir, iterations=done, base=base, final=final)
    if main_process:
        records = read_metrics(run_dir / "metrics.jsonl")
        plot_curves(
            records,
            ["reward_mean", "eval/strict/overall", "kl", "clip_ratio/region_mean"],
            run_dir / "curves.png",
            title=f"{cfg.method.name} on ShapeWorld",
        )
        if base is not None and final is not None:
            name, b = headline(base)
            f = headline(final)[1]
            if base.strict:  # accuracies in percent
                change = f"{100 * b:.1f}% -> final {100 * f:.1f}% ({100 * (f - b):+.1f} points"
            else:
                change = f"{b:.4f} -> final {f:.4f} ({f - b:+.4f}"
            splits = change_lines(base.outcomes, final.outcomes) if base.outcomes and final.outcomes else []
            for line in splits:  # learning (train split) and generalisation (held-out), with paired s.e.
                print(f"flowrl train: {line}")
            print(
                f"flowrl train: {name} base {change}, {final.count} paired samples) in "
                f"{(time.perf_counter() - t_start) / 60:.1f} min; run folder {run_dir}"
            )
    if world > 1:  # every process leaves together: a rank that exits while another still runs can abort in gloo
        accelerator.wait_for_everyone()
        torch.distributed.destroy_process_group()
    return TrainResult(run_dir, base, final, done)


if __name__ == "__main__":  # `python -m flowrl.train.image` / `torchrun ... -m flowrl.train.image`
    from flowrl.train.image_cli import main

    sys.exit(main())
