"""ReST-GRPO data assembly (ReST-RL stage 1, arXiv 2508.19576; code THUDM/ReST-RL at e03a987).

Before GRPO trains, the policy samples ``n`` completions for each prompt of a pool, and the training set is assembled
from what it got (`experiment/process_gen_data.py`, ``--mode grpo``)::

    sigma_p = std_j r_pj                         (population std, numpy's np.std, over the n rewards of prompt p)
    keep p  iff sigma_p >= sigma_0               (std_accept_threshold_grpo 0.05): a group GRPO can learn from
    if max_j r_pj >= r_0                         (completion_accept_threshold_grpo 0.9), with o* = argmax_j r_pj:
        prefixes of o*: pi_1 .. pi_L              (the code: line by line; here: up to each step delimiter '=')
        draw m = ceil(L * rho) prefixes           (n_sample 0.5 as a ratio; an int is a fixed count)
             with replacement, P(pi_i) = alpha^(i-1) / sum_k alpha^(k-1)     (alpha 0.95: early prefixes favoured)
        each drawn prefix gives a new prompt  q + pi_i  (the policy continues a partial solution; its reward is
        verified on pi_i + completion)

so the training prompts are those whose groups had reward variance, plus partial solutions of the solved ones, which
move a prompt's difficulty towards the middle and raise the reward variance of GRPO groups (the paper's aim).

Here: `assemble` is that rule on a fixed reward table (pure, tested by hand); `assemble_rows` runs it on a pool of
task rows with the trainer's own sampler and rewards (passed in as callables: no second rollout loop). An assembled
row is the task row plus ``rest_prefix``; the trainer puts the prefix's tokens after the prompt and scores
``prefix + completion`` (`flowrl/text/collect.py`, `decode`). Our reading, marked in docs/papers_llm.md: a prefix
never holds the whole completion (the code's last "line" is the whole solution; on the chain task that would leave
only EOS to generate) [ours]; the pool size and re-assembly period are config values [ours].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

PREFIX_KEY = "rest_prefix"
"""Column of an assembled row: the partial solution put after the prompt ('' or absent = the plain prompt)."""


class RestItem(NamedTuple):
    """One assembled training prompt: the pool row it comes from and the partial solution after the prompt."""

    row: int
    prefix: str


def reward_std(rewards: torch.Tensor) -> torch.Tensor:
    """`(P,)` population standard deviation (ddof 0, as numpy's np.std in the official code) of `(P, n)` rewards."""
    return rewards.double().std(dim=-1, unbiased=False)


def step_prefixes(completion: str, *, delimiter: str = "=") -> list[str]:
    """The partial solutions of a completion: its text up to and including each `delimiter`, the whole completion
    excluded [ours]. ``"12-8=4+3=7"`` -> ``["12-8=", "12-8=4+3="]``."""
    out, end = [], completion.find(delimiter)
    while end >= 0 and end + len(delimiter) < len(completion):
        out.append(completion[: end + len(delimiter)])
        end = completion.find(delimiter, end + len(delimiter))
    return out


def exponential_weights(n: int, alpha: float) -> torch.Tensor:
    """`(n,)` normalised weights alpha^i, i = 0 .. n-1 (`utils/sample_utils.py`)."""
    if not 0 < alpha < 1:
        raise ValueError(f"rest.alpha must be in (0, 1), got {alpha}.")
    w = torch.tensor([alpha**i for i in range(n)], dtype=torch.float64)
    return w / w.sum()


def num_subsamples(n_prefixes: int, n_sample: float) -> int:
    """m: an int n_sample is a fixed count; a float in (0, 1] a ratio, m = ceil(n_prefixes * n_sample)."""
    if isinstance(n_sample, int):
        return n_sample
    if not 0 < n_sample <= 1:
        raise ValueError(f"rest.n_sample as a ratio must be in (0, 1], got {n_sample}.")
    return math.ceil(n_prefixes * n_sample)


def assemble(
    rewards: torch.Tensor,
    completions: list[list[str]],
    *,
    std_threshold: float = 0.05,
    completion_threshold: float = 0.9,
    n_sample: float = 0.5,
    alpha: float = 0.95,
    delimiter: str = "=",
    generator: torch.Generator | None = None,
) -> list[RestItem]:
    """The ReST-GRPO assembly rule (module docstring) on a fixed reward table.

    Args:
        rewards: `(P, n)` rewards of n sampled completions per pool prompt.
        completions: P lists of n completion texts (the best one's prefixes become prompts).
        std_threshold: sigma_0, keep a prompt iff its reward std >= this (0.05).
        completion_threshold: r_0, take prefixes only if the best reward >= this (0.9).
        n_sample: prefixes drawn per kept, solved prompt: a ratio (float, 0.5) or a count (int).
        alpha: decay of the prefix-drawing weights (0.95).
        delimiter: where a partial solution ends ('=' on the chain task; the code splits code lines at '\\n').
        generator: the draw's random generator.

    Returns:
        `RestItem`s in pool order: each kept prompt (prefix ''), then its drawn prefixes.
    """
    if rewards.ndim != 2 or rewards.shape[0] != len(completions):
        raise ValueError(f"rewards must be (P, n) with one row per prompt, got {tuple(rewards.shape)} for "
                         f"{len(completions)} prompts.")  # fmt: skip
    std = reward_std(rewards)
    out: list[RestItem] = []
    for p in range(rewards.shape[0]):
        if std[p] < std_threshold:  # too little reward variance for GRPO
            continue
        out.append(RestItem(p, ""))
        best = int(torch.argmax(rewards[p]))  # the first maximum, as Python's max()
        if rewards[p, best] < completion_threshold:
            continue
        prefixes = step_prefixes(completions[p][best].rstrip(), delimiter=delimiter)
        if not prefixes:
            continue
        m = num_subsamples(len(prefixes), n_sample)
        picks = torch.multinomial(exponential_weights(len(prefixes), alpha), m, replacement=True, generator=generator)
        out += [RestItem(p, prefixes[int(i)]) for i in picks]
    return out


class Assembly(NamedTuple):
    """An assembled training set and what building it cost."""

    rows: list[dict]  # task rows, each with PREFIX_KEY
    generated_tokens: int  # tokens the pool's sampling generated
    kept_prompts: int  # pool prompts with reward std >= sigma_0
    pool_size: int
    mean_std: float  # mean reward std over the pool


def assemble_rows(
    rows: list[dict],
    pool: list[int],
    sample_and_score: Callable[[list[int]], tuple[torch.Tensor, list[list[str]], int]],
    *,
    std_threshold: float,
    completion_threshold: float,
    n_sample: float,
    alpha: float,
    delimiter: str,
    generator: torch.Generator,
) -> Assembly:
    """Sample the `pool` rows (indices into `rows`) with `sample_and_score` (the trainer's sampler and rewards:
    returns `(P, n)` rewards, the completion texts and the generated token count) and assemble them."""
    rewards, texts, tokens = sample_and_score(pool)
    items = assemble(
        rewards, texts, std_threshold=std_threshold, completion_threshold=completion_threshold, n_sample=n_sample,
        alpha=alpha, delimiter=delimiter, generator=generator,
    )  # fmt: skip
    std = reward_std(rewards)
    out = [{**rows[pool[it.row]], PREFIX_KEY: it.prefix} for it in items]
    return Assembly(out, tokens, int((std >= std_threshold).sum()), len(pool), float(std.mean()))


__all__ = [
    "PREFIX_KEY",
    "Assembly",
    "RestItem",
    "assemble",
    "assemble_rows",
    "exponential_weights",
    "num_subsamples",
    "reward_std",
    "step_prefixes",
]
