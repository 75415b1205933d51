"""Prompt formatting and tokenisation: the chat template when the tokenizer has one, the plain text otherwise."""

from __future__ import annotations

import torch
from transformers import PreTrainedTokenizerBase


def format_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str, *, system: str = "") -> str:
    """The text the model sees: the chat template with one user turn and a generation prompt, or `prompt` itself."""
    if not tokenizer.chat_template:
        return prompt
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def encode_prompts(
    tokenizer: PreTrainedTokenizerBase, prompts: list[str], *, max_prompt_length: int, system: str = ""
) -> list[list[int]]:
    """Token ids of each formatted prompt (no padding). A chat template carries its own special tokens; a plain
    prompt gets the tokenizer's (e.g. a BOS from its post-processor).

    Raises:
        ValueError: a prompt longer than `max_prompt_length` tokens (naming it and its length), or an empty one.
    """
    templated = bool(tokenizer.chat_template)
    texts = [format_prompt(tokenizer, p, system=system) for p in prompts]
    ids = tokenizer(texts, add_special_tokens=not templated)["input_ids"]
    for prompt, row in zip(prompts, ids, strict=True):
        if not row:
            raise ValueError(f"Prompt {prompt!r} encodes to no tokens; every prompt needs at least one token.")
        if len(row) > max_prompt_length:
            raise ValueError(
                f"Prompt {prompt[:60]!r} is {len(row)} tokens long, over the limit of {max_prompt_length} "
                "(generation.max_prompt_length, at most the model's context minus max_new_tokens). Shorten the "
                "prompt, drop it from the task file, or raise the limit for a model with a longer context."
            )
    return ids


def left_pad(rows: list[list[int]], *, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad id lists into `(N, L)` ids and attention mask (1 = real token)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r) :] = torch.tensor(r)
            mask[i, width - len(r) :] = 1
    return ids, mask
