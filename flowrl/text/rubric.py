"""Rubric rewards (RGR-GRPO, arXiv 2511.12344, "Reward and Guidance through Rubrics"): a completion is scored on a
list of checkable items, and the reward is their weighted mean

    R_rubric(y) = sum_i w_i s_i(y) / sum_i w_i,        s_i(y) in [0, 1]                      (RGR rubric reward)

RGR splits items into *factual* criteria (the final answer) and *process* criteria (the intermediate steps). Here the
items check the chain task's scratchpad (`flowrl/text/chain.py`) against the task row's ``result`` and ``steps``
columns; an item is written ``kind[:arg][@weight]``:

    result        the number after the last '=' equals the row's result                           (factual)
    step:K        the K-th partial result (1-based) equals steps[K-1]                              (process)
    steps         the fraction of partial results equal to the row's steps, position by position  (process)
    length        the completion writes exactly len(steps) partial results                         (process)
    eos           the completion ended with EOS                                                    (format)

Weights default to 1 (RGR's rubrics are written per question by an LLM with their own weights; the chain task's are
[?], hence config values: ``reward.rubric``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from flowrl.text.chain import split_steps

KINDS = ("result", "step", "steps", "length", "eos")


class RubricItem(NamedTuple):
    kind: str  # one of KINDS
    arg: int  # step index (1-based) for 'step', else 0
    weight: float


def parse_rubric(items: list[str], *, field: str = "reward.rubric") -> list[RubricItem]:
    """Parse ``kind[:arg][@weight]`` strings.

    Raises:
        ValueError: an empty list, an unknown kind, a missing / non-integer step index, or a weight that is not a
            positive number; the message names ``field[i]`` and the valid kinds.
    """
    if not items:
        raise ValueError(f"{field} is empty: give at least one item, e.g. ['result@2', 'steps'] (kinds: {KINDS}).")
    out = []
    for i, raw in enumerate(items):
        where = f"{field}[{i}] = {raw!r}"
        spec, _, w = str(raw).partition("@")
        kind, _, arg = spec.strip().partition(":")
        if kind not in KINDS:
            raise ValueError(f"{where}: unknown rubric kind {kind!r}. Valid kinds: {list(KINDS)} ('kind[:K][@w]').")
        try:
            weight = float(w) if w else 1.0
        except ValueError:
            weight = -1.0
        if weight <= 0:
            raise ValueError(f"{where}: the weight after '@' must be a positive number, e.g. 'result@2'.")
        if kind == "step":
            if not arg.isdigit() or int(arg) < 1:
                raise ValueError(f"{where}: 'step' needs a 1-based step index, e.g. 'step:1'.")
            out.append(RubricItem(kind, int(arg), weight))
        elif arg:
            raise ValueError(f"{where}: {kind!r} takes no argument; only 'step:K' does.")
        else:
            out.append(RubricItem(kind, 0, weight))
    return out


def item_score(item: RubricItem, completion: str, row: dict, *, terminated: bool) -> float:
    """s_i(y) in [0, 1] for one item, one completion and its task row (columns 'result', 'steps')."""
    got, want = split_steps(completion.strip()), [str(s) for s in row["steps"]]
    if item.kind == "result":
        return float(got[-1] == str(row["result"]))
    if item.kind == "step":
        k = item.arg - 1
        return float(k < len(got) and k < len(want) and got[k] == want[k])
    if item.kind == "steps":
        return sum(g == w for g, w in zip(got, want, strict=False)) / len(want)
    if item.kind == "length":
        return float(len(got) == len(want))
    return float(terminated)  # eos


class RubricReward:
    """`rewards.RewardFn`: R_rubric of each completion against its row's rubric columns (module docstring)."""

    name = "rubric"

    def __init__(self, items: list[str]) -> None:
        self.items = parse_rubric(items)

    def __call__(self, completions: list[str], prompts: list[str], metadata: list[dict] | None = None) -> torch.Tensor:
        if metadata is None or any("steps" not in m or "result" not in m for m in metadata):
            raise ValueError(
                "The rubric reward reads each task row's 'result' and 'steps' columns (the chain task's JSONL, "
                "flowrl/text/chain.py); this task file lacks them."
            )
        total = sum(it.weight for it in self.items)
        scores = [
            sum(it.weight * item_score(it, c, m, terminated=bool(m.get("terminated", True))) for it in self.items)
            / total
            for c, m in zip(completions, metadata, strict=True)
        ]
        return torch.tensor(scores, dtype=torch.float32)


class ChainResult:
    """1 when the number after the completion's last '=' equals the row's ``result`` and the completion ended with
    EOS (the chain task's answer-only exact match; `exact_match_eos` also demands the whole scratchpad)."""

    name = "chain_result"

    def __call__(self, completions: list[str], prompts: list[str], metadata: list[dict] | None = None) -> torch.Tensor:
        if metadata is None or any("result" not in m for m in metadata):
            raise ValueError("chain_result reads each task row's 'result' column (the chain task's JSONL).")
        return torch.tensor(
            [
                float(bool(m.get("terminated", True)) and split_steps(c.strip())[-1] == str(m["result"]))
                for c, m in zip(completions, metadata, strict=True)
            ],
            dtype=torch.float32,
        )
