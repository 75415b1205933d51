"""Per-token log-probs and entropies of completion tokens, in fp32, computed in chunks of positions.

One forward of the decoder gives the hidden states `(B, L, H)`; the output head, the fp32 log-softmax, the gather of
the sampled tokens and the entropy then run on chunks of `chunk_size` completion positions. With grad, each chunk is
recomputed in the backward (activation checkpointing), so at most one `(B, chunk, V)` fp32 logits block is alive at a
time: memory stays bounded for long completions and large vocabularies.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.utils.checkpoint import checkpoint
from transformers import PreTrainedModel

from flowrl.text.rollout import position_ids


class TokenLogProbs(NamedTuple):
    logp: torch.Tensor  # (B, C) log pi(token) at temperature T, fp32, with grad when computed with grad
    entropy: torch.Tensor  # (B, C) entropy of the tempered next-token distribution, fp32, detached


def _head_chunk(
    hidden: torch.Tensor, targets: torch.Tensor, head: torch.nn.Module, temperature: float, softcap: float | None
) -> tuple[torch.Tensor, torch.Tensor]:
    logits = head(hidden).float()  # (B, c, V)
    if softcap is not None:
        logits = torch.tanh(logits / softcap) * softcap
    logits = logits / temperature
    logp_all = torch.log_softmax(logits, dim=-1)  # (B, c, V) fp32
    logp = logp_all.gather(-1, targets[..., None]).squeeze(-1)  # (B, c)
    with torch.no_grad():
        entropy = -(logp_all.exp() * logp_all).sum(-1)  # (B, c)
    return logp, entropy


def completion_logprobs(
    model: PreTrainedModel,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    temperature: float = 1.0,
    chunk_size: int = 64,
) -> TokenLogProbs:
    """Log-probs and entropies of `completion_ids` `(B, C)` given left-padded prompts `(B, P)`.

    The sequence is ``prompt ++ completion`` with positions that skip the left padding (as `generate` does), so padding
    does not change the values. Logits are divided by `temperature` (the sampling distribution; TRL does the same).
    Grad flows when called with grad enabled; entropies are always detached.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}.")
    ids = torch.cat([prompt_ids, completion_ids], dim=1)  # (B, L)
    mask = torch.cat([prompt_mask, completion_mask], dim=1)  # (B, L)
    P, C = prompt_ids.shape[1], completion_ids.shape[1]
    hidden = model.get_decoder()(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask)).last_hidden_state
    hidden = hidden[:, P - 1 : P + C - 1]  # (B, C, H): the state before each completion token predicts it
    head = model.get_output_embeddings()
    softcap = model.config.to_dict().get("final_logit_softcapping")
    logps, entropies = [], []
    recompute = torch.is_grad_enabled() and C > chunk_size  # one chunk: nothing to bound, skip the recompute
    for s in range(0, C, chunk_size):
        h, t = hidden[:, s : s + chunk_size], completion_ids[:, s : s + chunk_size]
        if recompute:
            lp, ent = checkpoint(_head_chunk, h, t, head, temperature, softcap, use_reentrant=False)
        else:
            lp, ent = _head_chunk(h, t, head, temperature, softcap)
        logps.append(lp)
        entropies.append(ent)
    return TokenLogProbs(torch.cat(logps, dim=1), torch.cat(entropies, dim=1).detach())
