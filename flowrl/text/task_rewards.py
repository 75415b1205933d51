"""Text rewards of the trainer, resolved by name: the task's own strict exact match, then `rewards.load_reward`.

A text reward follows `rewards.RewardFn`: ``fn(completions: list[str], prompts: list[str], metadata) -> (N,) float32``.
`metadata` holds one dict per completion with the task row's fields (``answer`` and any extra JSONL columns) and
``terminated`` (True when the completion ended with EOS or a stop string).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

import rewards as reward_lib
from flowrl.text.evaluate import exact_match
from flowrl.text.rubric import ChainResult, RubricReward


class ExactMatchEOS:
    """1 when the whole completion (stripped, up to EOS) equals the row's ``answer`` and ended with EOS, else 0.

    Stricter than `rewards.REWARDS["exact_match"]`, which extracts the last number / boxed / tagged answer from free
    text: the arithmetic model must answer with nothing but the number and then stop.
    """

    name = "exact_match_eos"

    def __call__(self, completions: list[str], prompts: list[str], metadata: list[dict] | None = None) -> torch.Tensor:
        if metadata is None:
            raise ValueError("exact_match_eos needs metadata with each row's 'answer' (the task JSONL column).")
        scores = [
            exact_match(c, str(m["answer"]), terminated=bool(m.get("terminated", True)))
            for c, m in zip(completions, metadata, strict=True)
        ]
        return torch.tensor(scores, dtype=torch.float32)


TASK_REWARDS: dict[str, Callable[[], object]] = {
    "exact_match_eos": ExactMatchEOS,
    "chain_result": ChainResult,
    "rubric": RubricReward,  # needs the items of reward.rubric
}


def load_text_reward(name: str, *, rubric: list[str] | None = None):
    """A reward by name: `TASK_REWARDS`, else `rewards.load_reward` (its registry or ``package.module:factory``).
    ``rubric`` (RGR's items, config reward.rubric) is handed to the 'rubric' reward."""
    if name == "rubric":
        if not rubric:
            raise ValueError("reward 'rubric' needs its items: set reward.rubric, e.g. ['result@2', 'steps'].")
        return RubricReward(rubric)
    if name in TASK_REWARDS:
        return TASK_REWARDS[name]()
    try:
        return reward_lib.load_reward(name)
    except ValueError as e:
        raise ValueError(f"{e} Text-task rewards here: {sorted(TASK_REWARDS)}.") from e


def score_completions(
    fns: list, completions: list[str], prompts: list[str], metadata: list[dict]
) -> tuple[torch.Tensor, list[str]]:
    """`(N, K)` rewards, one column per function. A function that raises is an error naming it; NaN / inf values are
    returned as they are (the trainer skips and counts the groups that hold one). Also returns the names."""
    cols, names = [], [fn.name for fn in fns]
    for fn, name in zip(fns, names, strict=True):
        try:
            out = fn(completions, prompts, metadata)
        except Exception as e:
            raise RuntimeError(
                f"Reward {name!r} raised {type(e).__name__}: {e}. A reward must return one float per completion; "
                "return NaN for a completion it cannot score (that group is then skipped and counted)."
            ) from e
        cols.append(reward_lib.check_reward_output(name, out, len(completions)))
    return torch.stack(cols, dim=1), names


def nonfinite_groups(rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """`(N,)` bool: True for every row of a group where some reward is NaN / inf."""
    bad_rows = ~torch.isfinite(rewards).all(-1)  # (N,)
    bad_groups = torch.unique(group_ids[bad_rows])
    return torch.isin(group_ids, bad_groups)


__all__ = ["TASK_REWARDS", "ExactMatchEOS", "load_text_reward", "nonfinite_groups", "score_completions"]
