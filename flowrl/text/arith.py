"""The procedural arithmetic task of the shipped text model: 2-3 digit addition and subtraction.

A problem is a prompt like ``939-48=`` and its answer ``891`` (negative answers occur: ``12-345=`` -> ``-333``).
Each operand has 2 or 3 digits and the operator is + or -, all chosen uniformly. The held-out test split is a fixed
set of unique prompts; the training stream never yields one of them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple, TypeVar

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


P = TypeVar("P")  # a task's problem: a NamedTuple with a `prompt` field


def held_out_problems(n: int = 1000, *, seed: int = 12345) -> list[Problem]:
    """`n` unique problems from a fixed seed: the test split."""
    return unique_problems(sample_problem, n, seed=seed)


def train_stream(*, seed: int, exclude: set[str]) -> Iterator[Problem]:
    """An endless stream of training problems that never yields a prompt in `exclude` (the test split)."""
    return problem_stream(sample_problem, seed=seed, exclude=exclude)


def unique_problems(sample: Callable[[random.Random], P], n: int, *, seed: int) -> list[P]:
    """The first `n` problems of distinct prompts that `sample` draws from ``random.Random(seed)`` (a task's test
    split; the chain task's too)."""
    rng = random.Random(seed)
    seen: dict[str, P] = {}
    while len(seen) < n:
        p = sample(rng)
        seen.setdefault(p.prompt, p)
    return list(seen.values())


def problem_stream(sample: Callable[[random.Random], P], *, seed: int, exclude: set[str]) -> Iterator[P]:
    """An endless stream of `sample`'s problems from ``random.Random(seed)``, skipping every prompt in `exclude`."""
    rng = random.Random(seed)
    while True:
        p = sample(rng)
        if p.prompt not in exclude:
            yield p


def write_jsonl(problems: list, path: str | Path) -> Path:
    """Write one JSON line per problem, its fields as columns (``{"prompt": ..., "answer": ...}`` here; the chain
    task's extra columns reach the rewards' metadata), the task format `flowrl train-text` reads."""
    path = Path(path)
    path.write_text("".join(json.dumps(p._asdict()) + "\n" for p in problems))
    return path
