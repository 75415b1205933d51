"""The procedural arithmetic task of the shipped text model: 2-3 digit addition and subtraction.

A problem is a prompt like ``939-48=`` and its answer ``891`` (negative answers occur: ``12-345=`` -> ``-333``).
Each operand has 2 or 3 digits and the operator is + or -, all chosen uniformly. The held-out test split is a fixed
set of unique prompts; the training stream never yields one of them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

ALPHABET = "0123456789+-="
"""Every character a prompt or an answer of this task uses."""


class Problem(NamedTuple):
    prompt: str  # e.g. "939-48="
    answer: str  # e.g. "891"


def sample_problem(rng: random.Random) -> Problem:
    """One problem from `rng`: operand lengths (2 or 3 digits) and the operator uniform."""
    a = rng.randint(10, 99) if rng.random() < 0.5 else rng.randint(100, 999)
    b = rng.randint(10, 99) if rng.random() < 0.5 else rng.randint(100, 999)
    op = rng.choice("+-")
    return Problem(f"{a}{op}{b}=", str(a + b if op == "+" else a - b))


def held_out_problems(n: int = 1000, *, seed: int = 12345) -> list[Problem]:
    """`n` unique problems from a fixed seed: the test split."""
    rng = random.Random(seed)
    seen: dict[str, Problem] = {}
    while len(seen) < n:
        p = sample_problem(rng)
        seen.setdefault(p.prompt, p)
    return list(seen.values())


def train_stream(*, seed: int, exclude: set[str]) -> Iterator[Problem]:
    """An endless stream of training problems that never yields a prompt in `exclude` (the test split)."""
    rng = random.Random(seed)
    while True:
        p = sample_problem(rng)
        if p.prompt not in exclude:
            yield p


def write_jsonl(problems: list[Problem], path: str | Path) -> Path:
    """Write ``{"prompt": ..., "answer": ...}`` lines (the task format `flowrl train-text` reads)."""
    path = Path(path)
    path.write_text("".join(json.dumps({"prompt": p.prompt, "answer": p.answer}) + "\n" for p in problems))
    return path
