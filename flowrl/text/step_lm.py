"""One-token-at-a-time access to a causal LM for tree rollouts: each call forwards every live prefix ONCE.

A tree rollout (`flowrl/text/latr.py`) grows prefixes that fork and die. `StepLM` is what it needs of a model:
``start(prompts)`` prefills the prompts and returns the next-token logits of each; ``advance(parents, tokens)``
extends row ``parents[r]`` of the previous call by ``tokens[r]`` (a row may be taken several times: a fork; or not at
all: a pruned or finished branch) and returns the next-token logits of the new rows. `CachedLM` implements it for a
transformers causal LM with one KV cache whose rows are re-indexed (`DynamicCache.batch_select_indices`) instead of
recomputed, so a shared prefix costs one forward whatever the number of branches that later leave it. `forwards`
counts the rows forwarded (= prefixes evaluated): the cost the benchmarks report.
"""

from __future__ import annotations

from typing import Protocol

import torch
from transformers import DynamicCache, PreTrainedModel

from flowrl.text.prompts import left_pad
from flowrl.text.rollout import position_ids


class StepLM(Protocol):
    """Next-token logits of prefixes grown one token at a time (see the module docstring)."""

    forwards: int  # prefixes forwarded so far (prompt rows included)

    def start(self, prompt_rows: list[list[int]]) -> torch.Tensor:  # -> (P, V) logits
        ...

    def advance(self, parents: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:  # (R,), (R,) -> (R, V)
        ...


class CachedLM:
    """`StepLM` over a transformers causal LM: a left-padded prompt batch, then one KV-cached token per row."""

    def __init__(self, model: PreTrainedModel, *, pad_id: int) -> None:
        self.model, self.pad_id, self.forwards = model, pad_id, 0
        self.cache: DynamicCache | None = None
        self.mask: torch.Tensor | None = None  # (R, L) attention mask of the live rows
        self.next_pos: torch.Tensor | None = None  # (R,) position of the next token of each row

    @torch.no_grad()
    def start(self, prompt_rows: list[list[int]]) -> torch.Tensor:
        dev = self.model.device
        ids, mask = left_pad(prompt_rows, pad_id=self.pad_id)  # (P, L)
        ids, mask = ids.to(dev), mask.to(dev)
        pos = position_ids(mask)
        self.cache = DynamicCache(config=self.model.config)
        out = self.model(
            input_ids=ids, attention_mask=mask, position_ids=pos, cache=self.cache, use_cache=True, logits_to_keep=1
        )
        self.mask, self.next_pos = mask, pos[:, -1] + 1
        self.forwards += len(prompt_rows)
        return out.logits[:, -1].float()  # (P, V)

    @torch.no_grad()
    def advance(self, parents: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        if self.cache is None or self.mask is None or self.next_pos is None:
            raise RuntimeError("CachedLM.advance before start: prefill the prompts first.")
        dev = self.model.device
        parents, tokens = parents.to(dev), tokens.to(dev)
        self.cache.batch_select_indices(parents)  # forks copy the parent's keys / values, dead rows are dropped
        ones = torch.ones(parents.numel(), 1, dtype=self.mask.dtype, device=dev)
        self.mask = torch.cat([self.mask[parents], ones], dim=1)  # (R, L + 1)
        pos = self.next_pos[parents]
        out = self.model(
            input_ids=tokens[:, None], attention_mask=self.mask, position_ids=pos[:, None], cache=self.cache,
            use_cache=True,
        )  # fmt: skip
        self.next_pos = pos + 1
        self.forwards += int(parents.numel())
        return out.logits[:, -1].float()  # (R, V)
