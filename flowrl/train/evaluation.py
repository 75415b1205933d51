"""Evaluation of an image run: Euler ODE samples of fixed prompts and seeds (a paired comparison across
evaluations), graded (ShapeWorld) or scored by the configured rewards, and the sample grid of each evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch

from flowrl.flow.grid import named_grid
from flowrl.flow.plan import RolloutPlan, StepSpec
from flowrl.flow.tree import rollout
from flowrl.grpo import weighted_sum
from flowrl.models.base import ImageAdapter
from flowrl.runtime.plots import save_image_grid
from flowrl.runtime.seeding import generator as seeded_generator
from flowrl.shapes.grader import grade
from flowrl.train.estimators.config import grid_name
from flowrl.train.image_config import ImageTrainConfig
from flowrl.train.reward_fns import compute_rewards
from flowrl.train.shapes_eval import grade_by_split

EVAL_NOISE_KEY = 99  # seed key of the evaluation noise: the same at every evaluation, whatever train.seed
EVAL_BATCH = 50  # prompts sampled together


class EvalSummary(NamedTuple):
    strict: dict[str, float]  # per family and "overall" (held-out); "train/<family>", "train/overall" (train split)
    score: dict[str, float]
    count: int
    outcomes: dict[str, list[float]] | None = None  # key -> per-sample strict passes, in a fixed (paired) order


class EvalPrompts(NamedTuple):
    """The prompts every evaluation samples."""

    prompts: list[str]
    prefixes: list[str] | None  # per prompt, the split its results go under ("" held-out, "train/"); None: ungraded
    graded: bool  # ShapeWorld's grader judges the samples


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
        for start in range(0, len(prompts), EVAL_BATCH):
            batch = prompts[start : start + EVAL_BATCH]
            gen = seeded_generator(EVAL_NOISE_KEY, seed, start)
            noise = torch.randn((len(batch), 1, *adapter.latent_shape), generator=gen)
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


def eval_metrics(summary: EvalSummary) -> dict[str, float]:
    """The summary as metrics: ``eval/strict/<key>``, ``eval/score/<key>``."""
    out = {f"eval/strict/{k}": v for k, v in summary.strict.items()}
    out.update({f"eval/score/{k}": v for k, v in summary.score.items()})
    return out


def sample_grid(prompts: list[str], images: torch.Tensor, n: int, graded: bool) -> tuple[torch.Tensor, list[str]]:
    """`n` evenly spaced samples of an evaluation and their captions (ShapeWorld: PASS / fail by the grader)."""
    pick = list(range(0, len(prompts), max(1, len(prompts) // n)))[:n]
    imgs = images[pick]
    captions = [prompts[i] for i in pick]
    if graded:  # ShapeWorld: say which samples pass the grader
        passed = grade(imgs, captions).strict.tolist()
        captions = [("PASS " if ok else "fail ") + c for c, ok in zip(captions, passed, strict=True)]
    return imgs, captions


def save_grid(run_dir: Path, iteration: int, imgs: torch.Tensor, captions: list[str]) -> Path:
    """`samples/eval_<iteration>.png` of the run folder (5 columns, captioned); returns its path."""
    (run_dir / "samples").mkdir(exist_ok=True)
    path = run_dir / "samples" / f"eval_{iteration:05d}.png"
    save_image_grid(imgs, path, nrow=5, captions=captions)
    return path
