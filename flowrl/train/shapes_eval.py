"""ShapeWorld evaluation that separates learning from generalisation, with paired standard errors.

Every evaluation of a ShapeWorld run grades ODE samples of two fixed prompt sets:

* ``held-out``: compositions of the test split, never trained on (keys ``<family>`` and ``overall``, the names the
  run has always logged);
* ``train``: compositions of the train split (keys ``train/<family>`` and ``train/overall``), sampled from
  evaluation noise seeds that no rollout draws (the trainer's rollout noise comes from other generator streams), so
  a gain there is learning, and a gain on held-out compositions is generalisation.

Each evaluation uses the same prompts and seeds, so base and final form *paired* samples; the change of a rate
and its standard error come from the per-sample differences ``d_i = final_i - base_i``:
``mean(d) +- std(d, ddof=1) / sqrt(n)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from flowrl.shapes.evaluate import stratified_prompts
from flowrl.shapes.grader import grade

TRAIN_PREFIX = "train/"


class EvalSet(NamedTuple):
    """The fixed evaluation prompts and, per prompt, the key prefix of its split ('' held-out, 'train/')."""

    prompts: list[str]
    prefixes: list[str]


def shapeworld_eval_set(*, heldout_per_family: int, train_per_family: int) -> EvalSet:
    """Held-out (test split) prompts, then train-split prompts, each stratified by family (seed 0)."""
    heldout = stratified_prompts(heldout_per_family, split="test", seed=0)
    train = stratified_prompts(train_per_family, split="train", seed=0) if train_per_family else []
    return EvalSet(heldout + train, [""] * len(heldout) + [TRAIN_PREFIX] * len(train))


def grade_by_split(
    images: torch.Tensor, prompts: list[str], prefixes: list[str]
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Strict pass and partial credit per sample, listed under ``prefix + family`` and ``prefix + "overall"``.

    Returns:
        (strict, score): key -> per-sample values in prompt order (the order is the pairing of two evaluations).
    """
    result = grade(images, prompts)
    strict: dict[str, list[float]] = {}
    score: dict[str, list[float]] = {}
    for prefix, fam, st, sc in zip(
        prefixes, result.family, result.strict.tolist(), result.score.tolist(), strict=True
    ):
        for key in (prefix + fam, prefix + "overall"):
            strict.setdefault(key, []).append(float(st))
            score.setdefault(key, []).append(sc)
    return strict, score


def paired_change(base: list[float], final: list[float]) -> tuple[float, float]:
    """Mean and standard error of ``final_i - base_i`` over paired samples (same prompt and seed).

    Raises:
        ValueError: when the two lists differ in length (they come from different evaluation settings).
    """
    if len(base) != len(final) or not base:
        raise ValueError(
            f"paired_change needs two equally long, non-empty lists of per-sample outcomes; got {len(base)} and "
            f"{len(final)}. Compare evaluations made with the same eval.* settings."
        )
    diffs = [f - b for b, f in zip(base, final, strict=True)]
    n = len(diffs)
    mean = sum(diffs) / n
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1) if n > 1 else 0.0
    return mean, math.sqrt(var / n)


def change_metrics(base: dict[str, list[float]], final: dict[str, list[float]]) -> dict[str, float]:
    """The paired change of every key both evaluations graded, as metrics: ``eval/change/<key>`` (fraction) and
    ``eval/change_se/<key>`` (its paired standard error), so every evaluation of a run, not only the last, is logged
    against the base (keys of different sample counts, i.e. other eval settings, are skipped)."""
    out: dict[str, float] = {}
    for key in sorted(base.keys() & final.keys()):
        if len(base[key]) != len(final[key]) or not base[key]:
            continue
        out[f"eval/change/{key}"], out[f"eval/change_se/{key}"] = paired_change(base[key], final[key])
    return out


def change_lines(base: dict[str, list[float]], final: dict[str, list[float]]) -> list[str]:
    """One line per split: 'held-out compositions 30.1% -> 41.2% (+11.1 +- 1.2 points paired s.e., 1600 samples)'."""
    lines = []
    for key, name in (("overall", "held-out compositions"), (TRAIN_PREFIX + "overall", "train-split compositions")):
        if key not in base or key not in final or len(base[key]) != len(final[key]):
            continue
        b, f = base[key], final[key]
        mean, se = paired_change(b, f)
        lines.append(
            f"{name} {100 * sum(b) / len(b):.1f}% -> {100 * sum(f) / len(f):.1f}% "
            f"({100 * mean:+.1f} +- {100 * se:.1f} points paired s.e., {len(b)} samples)"
        )
    return lines
