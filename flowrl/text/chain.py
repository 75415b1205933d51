"""The chain task of the shipped text world: multi-step arithmetic with a written scratchpad before the answer.

A problem chains 3 to 5 one-digit operands (1-9) with + or - (``7+5-8+3=``). The expected completion writes every
partial result from left to right, copying the next operator and operand after it, so each step is one small 2-operand
operation and the last number is the answer::

    prompt   7+5-8+3=
    answer   12-8=4+3=7              (the whole completion: scratchpad, then the result after the last '=')
    result   7                       (column 'result')
    steps    ["12", "4", "7"]        (column 'steps': the partial results, the rubric of checkable steps)

One error anywhere ruins the answer, so a chain of 2-4 steps is much harder than one step, and a group's completions
can differ early (a wrong partial result) or late.

It uses the arithmetic alphabet (no new token), so a model of that world can be fine-tuned into it. The 'answer'
column is the whole completion so that the trainer's strict exact match (`exact_match_eos`) and greedy held-out
evaluation apply unchanged; `chain_result` scores the final number alone and `rubric` the steps
(`flowrl/text/rubric.py`). The held-out split is a fixed set of unique prompts; the training stream never yields one.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from flowrl.text.arith import ALPHABET, problem_stream, unique_problems, write_jsonl

__all__ = [
    "ALPHABET",
    "ChainProblem",
    "held_out_chains",
    "sample_chain",
    "split_steps",
    "train_chains",
    "write_chains",
]


class ChainProblem(NamedTuple):
    prompt: str  # "7+5-8+3="
    answer: str  # "12-8=4+3=7": the whole expected completion
    result: str  # "7"
    steps: list[str]  # ["12", "4", "7"]: partial results s_k = s_{k-1} op_k a_{k+1}


def sample_chain(
    rng: random.Random, *, min_operands: int = 3, max_operands: int = 5, low: int = 1, high: int = 9
) -> ChainProblem:
    """One problem: the operand count uniform in [min_operands, max_operands], operands uniform in low..high,
    operators uniform in {+, -}."""
    n = rng.randint(min_operands, max_operands)
    nums = [rng.randint(low, high) for _ in range(n)]
    ops = [rng.choice("+-") for _ in range(n - 1)]
    total, steps, parts = nums[0], [], []
    for op, b in zip(ops, nums[1:], strict=True):
        total = total + b if op == "+" else total - b
        steps.append(str(total))
    prompt = str(nums[0]) + "".join(f"{op}{b}" for op, b in zip(ops, nums[1:], strict=True)) + "="
    for k, s in enumerate(steps):  # "s1 op3 a3 = s2 op4 a4 = s3"
        parts.append(s if k == len(steps) - 1 else f"{s}{ops[k + 1]}{nums[k + 2]}=")
    return ChainProblem(prompt, "".join(parts), steps[-1], steps)


def split_steps(completion: str) -> list[str]:
    """The partial results a completion writes: the number before each '=' and after the last one.

    ``"12-8=4+3=7"`` -> ``["12", "4", "7"]``: each segment between '=' is ``s_k op a``; its leading signed
    number is s_k (an empty or malformed segment gives '').
    """
    out = []
    for seg in completion.split("="):
        num = seg[:1] if seg[:1] == "-" else ""
        for c in seg[len(num) :]:
            if not c.isdigit():
                break
            num += c
        out.append(num if num.lstrip("-") else "")
    return out


def held_out_chains(n: int = 1000, *, seed: int = 54321) -> list[ChainProblem]:
    """`n` unique problems from a fixed seed: the test split."""
    return unique_problems(sample_chain, n, seed=seed)


def train_chains(*, seed: int, exclude: set[str]) -> Iterator[ChainProblem]:
    """An endless stream of training problems that never yields a prompt in `exclude` (the test split)."""
    return problem_stream(sample_chain, seed=seed, exclude=exclude)


def write_chains(problems: list[ChainProblem], path: str | Path) -> Path:
    """Write ``{"prompt", "answer", "result", "steps"}`` lines (extra columns reach the rewards' metadata)."""
    return write_jsonl(problems, path)
