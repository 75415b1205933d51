"""Rewards for the text branch: exact-match answer, format and length (verifiable rewards for GRPO on LLMs).

Each is a plain function on one completion string plus a reward class with the common signature
``(completions: list[str], prompts, metadata) -> (B,) float32``. The exact-match reward reads the reference answer
from ``metadata[i]["answer"]`` (as TRL passes dataset columns to reward functions).
"""

from __future__ import annotations

import re

import torch

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def final_answer(text: str) -> str | None:
    """The answer a completion commits to: the text after the last ``####`` (GSM8K), else inside the last
    ``\\boxed{...}`` (MATH), else inside the last ``<answer>...</answer>``, else the last number; None if none.

    Example:
        >>> final_answer("12 + 30 = 42, so the answer is 42.")
        '42'
        >>> final_answer("work... #### 1,234")
        '1,234'
        >>> final_answer(r"so \\boxed{-7}")
        '-7'
        >>> final_answer("<answer>Paris</answer>")
        'Paris'
        >>> final_answer("no idea") is None
        True
    """
    if "####" in text:
        return text.rsplit("####", 1)[1].strip() or None
    boxed = re.findall(r"\\boxed\{([^{}]*)\}", text)
    if boxed:
        return boxed[-1].strip()
    tagged = re.findall(r"<answer>(.*?)</answer>", text, flags=re.DOTALL)
    if tagged:
        return tagged[-1].strip()
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else None


def normalize_answer(answer: str) -> str:
    """Canonical form for comparison: a number loses thousands separators, a leading ``+``, trailing zeros after
    the decimal point and a trailing ``.``; any other text is lower-cased with whitespace collapsed.

    Example:
        >>> normalize_answer("1,000.50"), normalize_answer("+3.0"), normalize_answer("  New  York ")
        ('1000.5', '3', 'new york')
    """
    s = answer.strip().rstrip(".").replace(",", "").lstrip("+")
    if re.fullmatch(r"-?\d+(\.\d+)?|-?\.\d+", s):
        if "." in s:
            s = s.rstrip("0").rstrip(".")
        return "0" if s in ("-0", "", "-") else s
    return " ".join(answer.lower().split())


def exact_match(completion: str, answer: str) -> float:
    """1.0 if the completion's `final_answer` equals `answer` after `normalize_answer`, else 0.0.

    Example:
        >>> exact_match("55-21=34", "34"), exact_match("I think 35", "34"), exact_match("#### 1,000", "1000")
        (1.0, 0.0, 1.0)
    """
    found = final_answer(completion)
    return float(found is not None and normalize_answer(found) == normalize_answer(answer))


THINK_ANSWER = r"<think>.*?</think>\s*<answer>.*?</answer>"


def format_match(completion: str, *, pattern: str = THINK_ANSWER) -> float:
    """1.0 if the whole completion (stripped) matches `pattern` (dot matches newlines), else 0.0. The default is
    the DeepSeek-R1 / TRL ``think_format_reward`` layout.

    Example:
        >>> format_match("<think>2+2</think> <answer>4</answer>"), format_match("4")
        (1.0, 0.0)
    """
    return float(re.fullmatch(pattern, completion.strip(), flags=re.DOTALL) is not None)


def overlong_penalty(length: int, *, max_length: int, cache_length: int) -> float:
    """DAPO's soft overlong punishment (Yu et al. 2025, eq. 13): 0 up to ``max_length - cache_length``, then
    falling linearly to -1 at ``max_length``, and -1 beyond.

    Example:
        >>> [overlong_penalty(n, max_length=20, cache_length=10) for n in (5, 10, 15, 20, 30)]
        [0.0, 0.0, -0.5, -1.0, -1.0]
    """
    if not 0 < cache_length <= max_length:
        raise ValueError(f"need 0 < cache_length <= max_length, got cache_length={cache_length}, max={max_length}.")
    free = max_length - cache_length
    if length <= free:
        return 0.0
    if length <= max_length:
        return (free - length) / cache_length
    return -1.0


def _check_texts(name: str, completions: list[str], prompts: list[str]) -> None:
    if not isinstance(completions, (list, tuple)) or not all(isinstance(c, str) for c in completions):
        raise TypeError(f"Reward {name!r} scores a list of completion strings; got {type(completions).__name__}.")
    if len(completions) != len(prompts):
        raise ValueError(f"Reward {name!r}: {len(completions)} completions for {len(prompts)} prompts; pass one each.")


class ExactMatchReward:
    """`exact_match` of each completion against ``metadata[i]["answer"]``."""

    name = "exact_match"

    def __call__(self, completions: list[str], prompts: list[str], metadata: list[dict] | None = None) -> torch.Tensor:
        _check_texts(self.name, completions, prompts)
        if metadata is None or len(metadata) != len(completions) or any("answer" not in m for m in metadata):
            raise ValueError(
                f"Reward {self.name!r} needs metadata with an 'answer' per completion (e.g. [{{'answer': '34'}}]); "
                f"got {None if metadata is None else [sorted(m) for m in metadata]}."
            )
        return torch.tensor(
            [exact_match(c, str(m["answer"])) for c, m in zip(completions, metadata, strict=True)], dtype=torch.float32
        )


class FormatReward:
    """`format_match` of each completion against `pattern`."""

    name = "format"

    def __init__(self, *, pattern: str = THINK_ANSWER) -> None:
        self.pattern = pattern

    def __call__(self, completions: list[str], prompts: list[str], metadata: list[dict] | None = None) -> torch.Tensor:
        del metadata
        _check_texts(self.name, completions, prompts)
        return torch.tensor([format_match(c, pattern=self.pattern) for c in completions], dtype=torch.float32)


class LengthReward:
    """`overlong_penalty` of each completion's length in characters (the reward sees strings, not tokens)."""

    name = "length"

    def __init__(self, *, max_length: int = 512, cache_length: int = 128) -> None:
        overlong_penalty(0, max_length=max_length, cache_length=cache_length)  # validates the pair
        self.max_length, self.cache_length = max_length, cache_length

    def __call__(self, completions: list[str], prompts: list[str], metadata: list[dict] | None = None) -> torch.Tensor:
        del metadata
        _check_texts(self.name, completions, prompts)
        kw = dict(max_length=self.max_length, cache_length=self.cache_length)
        return torch.tensor([overlong_penalty(len(c), **kw) for c in completions], dtype=torch.float32)
