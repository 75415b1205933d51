"""Sampled pass@k on a held-out set, with standard errors: k completions per problem from the trainer's sampler.

For problem i with c_i correct completions out of k samples (exact match of the whole completion, ended by EOS),

    pass@1 = mean_i c_i / k,        pass@k = mean_i 1[c_i > 0]                (n = k: the unbiased estimator of
                                                                                Chen et al. 2021 reduces to these)

and each standard error is std_i(x_i) / sqrt(N) over the N problems. Two models on the same problems are compared
with the paired standard error of the per-problem differences (`paired_diff`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from flowrl.text.evaluate import completion_text, eos_token_ids, exact_match
from flowrl.text.prompts import encode_prompts
from flowrl.text.rollout import SamplingConfig, sample_groups


class MeanSE(NamedTuple):
    mean: float
    se: float


def mean_se(x: torch.Tensor) -> MeanSE:
    """Mean and standard error std / sqrt(N) (unbiased std) of per-problem values `(N,)`."""
    x = x.double()
    return MeanSE(float(x.mean()), float(x.std(unbiased=True)) / math.sqrt(x.numel()) if x.numel() > 1 else 0.0)


def paired_diff(a: torch.Tensor, b: torch.Tensor) -> MeanSE:
    """Mean and paired standard error of b - a over the same problems `(N,)`."""
    return mean_se(b.double() - a.double())


@torch.no_grad()
def correct_counts(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    answers: list[str],
    *,
    k: int,
    sampling: SamplingConfig,
    max_prompt_length: int,
    chunk: int = 125,
) -> torch.Tensor:
    """`(N,)` number of the k sampled completions of each prompt that exactly match its answer (EOS required)."""
    was_training = model.training
    model.eval()
    eos = eos_token_ids(model, tokenizer)
    out = []
    try:
        for s in range(0, len(prompts), chunk):
            rows = encode_prompts(tokenizer, prompts[s : s + chunk], max_prompt_length=max_prompt_length)
            ro = sample_groups(model, tokenizer, rows, group_size=k, sampling=sampling, eos_ids=eos)
            ids = (ro.completion_ids * ro.completion_mask).tolist()
            hits = []
            for r, (row, n) in enumerate(zip(ids, ro.completion_mask.sum(-1).tolist(), strict=True)):
                text, done = completion_text(tokenizer, row[:n], eos_ids=eos)
                hits.append(exact_match(text, answers[s + r // k], terminated=done))
            out.append(torch.tensor(hits).view(-1, k).sum(-1))
    finally:
        model.train(was_training)
    return torch.cat(out)  # (N,)


def pass_at(counts: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-problem pass@1 (c / k) and pass@k (c > 0) values `(N,)` from correct counts."""
    return counts.double() / k, (counts > 0).double()
