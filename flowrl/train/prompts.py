"""Prompt sets of a ShapeWorld run: a stratified training draw per iteration and a fixed held-out evaluation set."""

from __future__ import annotations

import json
import random
from pathlib import Path

from flowrl.shapes.evaluate import stratified_prompts
from flowrl.shapes.grammar import FAMILIES
from flowrl.shapes.sampler import sample_prompts
from rewards.jsonl import jsonl_lines


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


def _jsonl_prompts(path: Path) -> list[str]:
    """The ``"prompt"`` of each JSON object line (blank lines skipped); bad lines are one error naming each."""
    prompts, bad = [], []
    for line, obj in jsonl_lines(path):
        if isinstance(obj, json.JSONDecodeError):
            bad.append(f"line {line}: invalid JSON ({obj.msg})")
            continue
        prompt = obj.get("prompt") if isinstance(obj, dict) else None
        if not isinstance(prompt, str) or not prompt.strip():
            bad.append(f"line {line}: needs a non-empty string 'prompt', got {prompt!r}")
        else:
            prompts.append(prompt.strip())
    if bad:
        raise ValueError(
            f"prompts file {str(path)!r} has {len(bad)} bad line(s): {'; '.join(bad[:10])}. Each line is one JSON "
            'object with a "prompt" (and, for GenEval, its metadata: docs/geneval.md).'
        )
    return prompts


def read_prompts_file(path: str | Path) -> list[str]:
    """The prompts of a prompts file: a ``.txt`` file's non-empty, non-comment lines, or each line's ``"prompt"`` in
    a ``.jsonl`` file (a GenEval metadata file is one, docs/geneval.md). An empty or missing file, or a bad JSONL
    line (its number and why), is an error that says so."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"train.prompts_file {str(path)!r} does not exist.")
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        prompts = _jsonl_prompts(path)
    else:
        prompts = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    if not prompts:
        raise ValueError(
            f"train.prompts_file {str(path)!r} holds no prompts (.txt: one per line, '#' starts a comment; .jsonl: "
            'one {"prompt": ...} object per line).'
        )
    return prompts


def file_prompts(prompts: list[str], num_prompts: int, *, seed: int, iteration: int) -> list[str]:
    """`num_prompts` prompts drawn with replacement from `prompts`, depending only on (seed, iteration)."""
    return random.Random(seed * 1_000_003 + iteration).choices(prompts, k=num_prompts)
