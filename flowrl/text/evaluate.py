"""Held-out evaluation: greedy decoding, exact match of the completion (up to EOS) against the answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from flowrl.text.prompts import encode_prompts, left_pad


def completion_text(tokenizer: PreTrainedTokenizerBase, ids: list[int], *, eos_ids: set[int]) -> tuple[str, bool]:
    """Decode a completion up to its first EOS (exclusive); returns the text and whether an EOS was emitted."""
    for i, t in enumerate(ids):
        if t in eos_ids:
            return tokenizer.decode(ids[:i], skip_special_tokens=True), True
    return tokenizer.decode(ids, skip_special_tokens=True), False


def exact_match(text: str, answer: str, *, terminated: bool) -> float:
    """1.0 if the completion (whitespace-stripped) equals the answer and ended with EOS, else 0.0."""
    return float(terminated and text.strip() == answer.strip())


def greedy_accuracy(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: list[str], answers: list[str], **kwargs: Any
) -> float:
    """Fraction of `prompts` whose greedy completion exactly matches its answer (a missing EOS counts as wrong):
    the mean of `greedy_hits` (same keyword arguments; `answer_of` extracts the answer from the completion first,
    None from it counts as wrong)."""
    return sum(greedy_hits(model, tokenizer, prompts, answers, **kwargs)) / len(prompts)


@torch.no_grad()
def greedy_hits(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    answers: list[str],
    *,
    max_new_tokens: int,
    max_prompt_length: int,
    batch_size: int = 500,
    system: str = "",
    answer_of: Callable[[str], str | None] | None = None,
) -> list[float]:
    """Per prompt, 1.0 if its greedy completion (or `answer_of` of it) exactly matches its answer (EOS required)."""
    if not prompts:
        raise ValueError("The held-out set is empty: pass at least one (prompt, answer) pair.")
    was_training = model.training
    model.eval()
    eos_ids = eos_token_ids(model, tokenizer)
    hits: list[float] = []
    try:
        for start in range(0, len(prompts), batch_size):
            rows = encode_prompts(
                tokenizer, prompts[start : start + batch_size], max_prompt_length=max_prompt_length, system=system
            )
            ids, mask = left_pad(rows, pad_id=tokenizer.pad_token_id)  # (N, L)
            out = model.generate(
                input_ids=ids.to(model.device),
                attention_mask=mask.to(model.device),
                do_sample=False,
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=sorted(eos_ids),
            )[:, ids.shape[1] :].tolist()
            for row, answer in zip(out, answers[start : start + batch_size], strict=True):
                text, done = completion_text(tokenizer, row, eos_ids=eos_ids)
                if answer_of is not None:
                    got = answer_of(text)
                    text, done = ("", False) if got is None else (got, done)
                hits.append(exact_match(text, answer, terminated=done))
    finally:
        model.train(was_training)
    return hits


def eos_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> set[int]:
    """EOS ids from the generation config (may be a list, e.g. chat models' end-of-turn) and the tokenizer."""
    ids: set[int] = set()
    gen = model.generation_config.eos_token_id if model.generation_config is not None else None
    for value in (gen, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif value is not None:
            ids.update(int(v) for v in value)
    if not ids:
        raise ValueError(
            "Neither the tokenizer nor the model's generation_config defines an EOS token, so completions could "
            "never end: set tokenizer.eos_token (and generation_config.eos_token_id) in the model folder."
        )
    return ids
