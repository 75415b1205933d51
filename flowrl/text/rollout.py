"""Batched sampling of a group of completions per prompt with transformers `generate`.

Each prompt is prefilled ONCE: a forward over its tokens but the last fills a KV cache, the cache rows are repeated
`group_size` times, and `generate` continues from that cache for the repeated prompts (it only has the last prompt
token left to process). Plain `generate(num_return_sequences=G)` would prefill every prompt G times. Sampling
(temperature, top-k, top-p, max new tokens, EOS) is generate's own; stop strings are a decoding stopping criterion.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from flowrl.text.prompts import left_pad


class SamplingConfig(NamedTuple):
    """Sampling settings of a rollout."""

    max_new_tokens: int = 8
    temperature: float = 1.0
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1 = off
    stop_strings: tuple[str, ...] = ()  # stop after any of these (the string stays in the completion)


class Rollout(NamedTuple):
    """A batch of N = prompts x group_size sampled completions; row i belongs to group ``group_ids[i]``."""

    prompt_ids: torch.Tensor  # (N, P) left-padded
    prompt_mask: torch.Tensor  # (N, P) 1 = real token
    completion_ids: torch.Tensor  # (N, C) right-padded with the pad id after the end
    completion_mask: torch.Tensor  # (N, C) 1 on generated tokens up to and including the first EOS / stop string
    truncated: torch.Tensor  # (N,) bool: ended without EOS or stop string (hit max_new_tokens)
    group_ids: torch.Tensor  # (N,) index of the prompt in the batch


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding: ``cumsum(mask) - 1`` (0 on pad columns), as `generate` computes them."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (N, L)


@torch.no_grad()
def sample_groups(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt_rows: list[list[int]],
    *,
    group_size: int,
    sampling: SamplingConfig,
    eos_ids: set[int],
    prefill_once: bool = True,
) -> Rollout:
    """Sample `group_size` completions for each prompt (token id lists, unpadded).

    Args:
        model: a causal LM (eval / train mode is left as is; dropout should be off for on-policy sampling).
        tokenizer: gives the pad id (and decodes for stop strings).
        prompt_rows: one id list per prompt.
        group_size: completions per prompt (G >= 1).
        sampling: temperature, top-k, top-p, stop strings, max new tokens.
        eos_ids: token ids that end a completion.
        prefill_once: share one prompt prefill between the group's samples (same distribution, less compute).
    """
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}.")
    if tokenizer.pad_token_id is None:
        raise ValueError(
            "The tokenizer has no pad token, needed to batch prompts of different lengths. Set one in the model "
            "folder (e.g. tokenizer.pad_token = tokenizer.eos_token, then save_pretrained)."
        )
    device = model.device
    ids, mask = left_pad(prompt_rows, pad_id=tokenizer.pad_token_id)  # (P, L)
    ids, mask = ids.to(device), mask.to(device)
    rep_ids, rep_mask = ids.repeat_interleave(group_size, 0), mask.repeat_interleave(group_size, 0)  # (N, L)
    kwargs: dict = {}
    if prefill_once and group_size > 1 and ids.shape[1] > 1:
        cache = DynamicCache(config=model.config)
        model(
            input_ids=ids[:, :-1],
            attention_mask=mask[:, :-1],
            position_ids=position_ids(mask)[:, :-1],
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        cache.batch_repeat_interleave(group_size)
        kwargs["cache"] = cache
    if sampling.stop_strings:
        from transformers import StoppingCriteriaList

        kwargs["stopping_criteria"] = StoppingCriteriaList(
            [StopOnStrings(tokenizer, sampling.stop_strings, prompt_length=rep_ids.shape[1])]
        )
    out = model.generate(
        input_ids=rep_ids,
        attention_mask=rep_mask,
        do_sample=True,
        temperature=sampling.temperature,
        top_k=sampling.top_k,
        top_p=sampling.top_p,
        max_new_tokens=sampling.max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=sorted(eos_ids),
        **kwargs,
    )
    completion = out[:, rep_ids.shape[1] :]  # (N, C)
    comp_mask, truncated = completion_mask(
        completion, eos_ids=eos_ids, stopped=_stopped_by_string(tokenizer, completion, sampling.stop_strings)
    )
    completion = torch.where(comp_mask.bool(), completion, tokenizer.pad_token_id)
    groups = torch.arange(len(prompt_rows), device=device).repeat_interleave(group_size)
    return Rollout(rep_ids, rep_mask, completion, comp_mask, truncated, groups)


def concat_rollouts(parts: list[Rollout], *, pad_id: int) -> Rollout:
    """One rollout from several: prompts re-left-padded, completions re-right-padded to the widest part, and the group
    ids of each part offset past the previous parts' groups (parts keep their order)."""
    P = max(r.prompt_ids.shape[1] for r in parts)
    C = max(r.completion_ids.shape[1] for r in parts)

    def left(x: torch.Tensor, fill: int) -> torch.Tensor:
        return torch.nn.functional.pad(x, (P - x.shape[1], 0), value=fill)

    def right(x: torch.Tensor, fill: int) -> torch.Tensor:
        return torch.nn.functional.pad(x, (0, C - x.shape[1]), value=fill)

    offsets, groups = 0, []
    for r in parts:
        groups.append(r.group_ids + offsets)
        offsets += int(r.group_ids.max()) + 1
    return Rollout(
        torch.cat([left(r.prompt_ids, pad_id) for r in parts]),
        torch.cat([left(r.prompt_mask, 0) for r in parts]),
        torch.cat([right(r.completion_ids, pad_id) for r in parts]),
        torch.cat([right(r.completion_mask, 0) for r in parts]),
        torch.cat([r.truncated for r in parts]),
        torch.cat(groups),
    )


class StopOnStrings:
    """A `generate` stopping criterion: a row is done once its decoded completion contains a stop string.

    It decodes the text (so it works for any tokenizer, including character-level ones where transformers' built-in
    `stop_strings` cannot build its token table).
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, stop_strings: tuple[str, ...], *, prompt_length: int):
        self.tokenizer, self.stop_strings, self.prompt_length = tokenizer, stop_strings, prompt_length

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_length :], skip_special_tokens=True)
        return torch.tensor([any(s in t for s in self.stop_strings) for t in texts], device=input_ids.device)


def completion_mask(
    completion: torch.Tensor, *, eos_ids: set[int], stopped: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(N, C)` mask of the tokens up to and including the first EOS, and `(N,)` truncated flags (no EOS).

    `stopped` `(N, C)` bool marks tokens at which a stop string completed (they end the completion like an EOS).
    """
    end = torch.isin(completion, torch.tensor(sorted(eos_ids), device=completion.device))  # (N, C)
    if stopped is not None:
        end = end | stopped
    ended_before = end.long().cumsum(-1) - end.long()  # ends strictly before t
    mask = (ended_before == 0).long()  # (N, C)
    return mask, ~end.any(-1)


def _stopped_by_string(
    tokenizer: PreTrainedTokenizerBase, completion: torch.Tensor, stop_strings: tuple[str, ...]
) -> torch.Tensor | None:
    """`(N, C)` bool: True at the token where a stop string first appears in the decoded completion."""
    if not stop_strings:
        return None
    stopped = torch.zeros(completion.shape, dtype=torch.bool, device=completion.device)
    for i, row in enumerate(completion.tolist()):
        for t in range(len(row)):
            text = tokenizer.decode(row[: t + 1], skip_special_tokens=True)
            if any(s in text for s in stop_strings):
                stopped[i, t] = True
                break
    return stopped
