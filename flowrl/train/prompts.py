"""Prompt sets of a ShapeWorld run: a stratified training draw per iteration and a fixed held-out evaluation set."""

from __future__ import annotations

import random
from pathlib import Path

from flowrl.shapes.evaluate import stratified_prompts
from flowrl.shapes.grammar import FAMILIES
from flowrl.shapes.sampler import sample_prompts


def iteration_prompts(num_prompts: int, *, families: dict[str, float], seed: int, iteration: int) -> list[str]:
    """`num_prompts` train-split prompts for one iteration, stratified over `families` by weight.

    Each family gets ``floor(n * w / sum w)`` prompts and the remainder goes to families drawn by weight, so every
    iteration sees the same mix (a random mix makes the per-iteration reward swing with the draw, not with learning).
    Depends only on (seed, iteration), never on global random state.
    """
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown or not families or min(families.values()) < 0 or sum(families.values()) <= 0:
        raise ValueError(
            f"train.families must map families to weights >= 0 with a positive sum; got {families}. "
            f"Valid families: {', '.join(FAMILIES)}."
        )
    rng = random.Random(seed * 1_000_003 + iteration)
    names = [f for f in FAMILIES if families.get(f, 0) > 0]
    total = sum(families[f] for f in names)
    counts = {f: int(num_prompts * families[f] / total) for f in names}
    for f in rng.choices(names, weights=[families[f] for f in names], k=num_prompts - sum(counts.values())):
        counts[f] += 1
    prompts: list[str] = []
    for index, f in enumerate(names):
        prompts += sample_prompts(counts[f], split="train", seed=rng.randrange(2**31) + index, family_weights={f: 1})
    rng.shuffle(prompts)
    return prompts


def eval_prompts(prompts_per_family: int) -> list[str]:
    """The fixed held-out (test split) prompts, `prompts_per_family` of each family."""
    return stratified_prompts(prompts_per_family, split="test", seed=0)


def read_prompts_file(path: str | Path) -> list[str]:
    """Non-empty, non-comment lines of a prompts file; an empty or missing file is an error that says so."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"train.prompts_file {str(path)!r} does not exist.")
    prompts = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    if not prompts:
        raise ValueError(f"train.prompts_file {str(path)!r} holds no prompts (one per line; '#' starts a comment).")
    return prompts


def file_prompts(prompts: list[str], num_prompts: int, *, seed: int, iteration: int) -> list[str]:
    """`num_prompts` prompts drawn with replacement from `prompts`, depending only on (seed, iteration)."""
    return random.Random(seed * 1_000_003 + iteration).choices(prompts, k=num_prompts)
