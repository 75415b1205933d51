"""Held-out evaluation of a ShapeWorld model: strict accuracy and partial credit per prompt family."""

import random
from typing import NamedTuple

import torch

from flowrl.shapes.grader import grade
from flowrl.shapes.grammar import FAMILIES, Split, format_prompt, parse_prompt, split_prompts
from flowrl.shapes.model import ShapeWorldModel
from flowrl.shapes.sampling import sample_images


class EvalResult(NamedTuple):
    """Output of `evaluate_model`.

    Args:
        strict (`dict[str, float]`): strict accuracy per family and under "overall".
        score (`dict[str, float]`): mean partial credit per family and under "overall".
        count (`dict[str, int]`): graded images per family and under "overall".
        prompts (`list[str]`): the evaluated prompts (each sampled once per seed).
        passed (`list[list[bool]]`): strict pass of every sample, [seed][prompt].
    """

    strict: dict[str, float]
    score: dict[str, float]
    count: dict[str, int]
    prompts: list[str]
    passed: list[list[bool]] | None = None  # [seed][prompt] strict pass, for pass@k (`pass_at_k`)


def stratified_prompts(prompts_per_family: int, *, split: Split = "test", seed: int = 0) -> list[str]:
    """`prompts_per_family` prompts of each family from one split, family by family.

    Each family's prompts are shuffled with `random.Random(seed)` and taken in order, cycling through the
    shuffled list again only when a family has fewer prompts than asked (the test split holds 18 single, 11
    counting, 2 two_objects, 54 colors and 246 position prompts), so the draw has as many distinct prompts as
    the split allows.
    """
    rng = random.Random(seed)
    prompts = []
    for family in FAMILIES:
        pool = [format_prompt(spec) for spec in split_prompts(family, split)]
        rng.shuffle(pool)
        prompts += [pool[index % len(pool)] for index in range(prompts_per_family)]
    return prompts


def evaluate_model(
    model: ShapeWorldModel,
    prompts: list[str],
    *,
    seeds: list[int],
    num_inference_steps: int = 10,
    guidance_scale: float = 4.0,
    shift: float = 3.0,
    batch_size: int = 100,
) -> EvalResult:
    """Sample every prompt once per seed with the Euler ODE and grade the images.

    Args:
        model (`ShapeWorldModel`): the model (eval mode).
        prompts (`list[str]`): prompts to evaluate, e.g. from `stratified_prompts`.
        seeds (`list[int]`): one generation pass per seed; the noise of a pass is seeded by (seed, batch index).
        num_inference_steps (`int`, defaults to 10), guidance_scale (`float`, defaults to 4.0), shift (`float`,
            defaults to 3.0): sampler settings.
        batch_size (`int`, defaults to 100): prompts per sampling batch.

    Returns:
        `EvalResult`.
    """
    strict_sum: dict[str, float] = {}
    score_sum: dict[str, float] = {}
    count: dict[str, int] = {}
    passed: list[list[bool]] = []
    for seed in seeds:
        passed.append([])
        for start in range(0, len(prompts), batch_size):
            batch = prompts[start : start + batch_size]
            generator = torch.Generator().manual_seed(seed * 1_000_003 + start)
            images = sample_images(
                model,
                batch,
                generator=generator,
                num_inference_steps=num_inference_steps,
                guidance_scale=guidance_scale,
                shift=shift,
            )  # (b, 3, H, W)
            result = grade(images, batch)
            passed[-1].extend(result.strict.tolist())
            for family, strict, score in zip(
                result.family, result.strict.tolist(), result.score.tolist(), strict=True
            ):
                for key in (family, "overall"):
                    strict_sum[key] = strict_sum.get(key, 0.0) + float(strict)
                    score_sum[key] = score_sum.get(key, 0.0) + score
                    count[key] = count.get(key, 0) + 1
    return EvalResult(
        strict={key: strict_sum[key] / count[key] for key in count},
        score={key: score_sum[key] / count[key] for key in count},
        count=count,
        prompts=list(prompts),
        passed=passed,
    )


def pass_at_k(result: EvalResult) -> dict[str, float]:
    """pass@k with k = the number of seeds: per family and overall, the fraction of prompt slots with at least one
    strict pass among their k samples (an upper bound on what selecting by the grader could reach)."""
    hits: dict[str, list[float]] = {}
    for index, prompt in enumerate(result.prompts):
        any_pass = float(any(seed_row[index] for seed_row in result.passed))
        for key in (parse_prompt(prompt).family, "overall"):
            hits.setdefault(key, []).append(any_pass)
    return {key: sum(v) / len(v) for key, v in hits.items()}
