"""SofT-GRPO rollouts: a thinking part of soft tokens, then a discrete answer, on the KV-cached step model.

Each prompt row is prefilled once by `CachedLM.start`; then `think_steps` soft steps feed the Gumbel-Softmax mixture
embedding e = y @ E back as the next input (`soft_thinking.soft_step`, `SoftCachedLM.advance_embeds`), then the answer
is sampled token by token (temperature, top-k, top-p: SofT-GRPO's `after_thinking_*`) until EOS or the budget. The
rollout keeps, per soft step, the weights y (the next input), the perturbed log-probs q' and the support S; per answer
token its id, and the log-likelihoods under the sampling policy (`old_soft_logp`, `old_token_logp`).

`sequence_logprobs` recomputes both log-likelihoods under the current policy in one full forward (the stored y E as
the inputs of the thinking positions, constants as in the official actor; the answer tokens' embeddings after them),
with grad: the numerators of SofT-GRPO's soft and discrete ratios (`soft_thinking.clipped_ratio_loss`). A fixed
number of soft steps is ours [ours]: the official code thinks until the argmax token is </think>; the chain task has
no such marker.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from transformers import PreTrainedModel

from flowrl.text.logprobs import TokenLogProbs
from flowrl.text.prompts import left_pad
from flowrl.text.rollout import Rollout, position_ids
from flowrl.text.soft_thinking import restricted_logprobs, soft_logprob, soft_step, support_mask, token_logprob
from flowrl.text.step_lm import CachedLM


class SoftParams(NamedTuple):
    """SofT-GRPO's rollout knobs; defaults are the official training script's (flowrl/text/soft_thinking.py)."""

    think_steps: int = 4  # soft tokens before the answer [ours]
    tau: float = 0.1  # Gumbel-Softmax temperature (gumbel_softmax_temperature)
    scale: float = 1.0  # Gumbel noise scale beta (noise_factor)
    temperature: float = 1.0  # T of the thinking and answer distributions (temperature, after_thinking_temperature)
    top_k: int | None = 5  # top_k, after_thinking_top_k
    top_p: float | None = 0.95  # top_p, after_thinking_top_p


class SoftRollout(NamedTuple):
    prompt_ids: torch.Tensor  # (N, L) left-padded prompts
    prompt_mask: torch.Tensor  # (N, L)
    weights: torch.Tensor  # (N, S, V) y of each soft step (the input of the next position)
    q_prime: torch.Tensor  # (N, S, V) log p + g on the support, -inf outside
    support: torch.Tensor  # (N, S, V) bool
    answer_ids: torch.Tensor  # (N, A) sampled answer tokens (pad after EOS)
    answer_mask: torch.Tensor  # (N, A) 1 up to and including the EOS
    old_soft_logp: torch.Tensor  # (N, S) log pi_old(q'_s)
    old_token_logp: torch.Tensor  # (N, A) log pi_old(o_t), 0 on masked tokens


class SoftCachedLM(CachedLM):
    """`CachedLM` that can also advance every row by an input embedding instead of a token."""

    @torch.no_grad()
    def advance_embeds(self, embeds: torch.Tensor) -> torch.Tensor:  # (R, D) -> (R, V)
        if self.cache is None or self.mask is None or self.next_pos is None:
            raise RuntimeError("SoftCachedLM.advance_embeds before start: prefill the prompts first.")
        ones = torch.ones(embeds.shape[0], 1, dtype=self.mask.dtype, device=self.mask.device)
        self.mask = torch.cat([self.mask, ones], dim=1)
        out = self.model(
            inputs_embeds=embeds[:, None].to(self.model.dtype), attention_mask=self.mask,
            position_ids=self.next_pos[:, None], cache=self.cache, use_cache=True,
        )  # fmt: skip
        self.next_pos = self.next_pos + 1
        self.forwards += embeds.shape[0]
        return out.logits[:, -1].float()


@torch.no_grad()
def soft_rollout(
    model: PreTrainedModel,
    prompt_rows: list[list[int]],
    *,
    group_size: int,
    max_answer_tokens: int,
    eos_ids: set[int],
    pad_id: int,
    params: SoftParams,
    generator: torch.Generator | None = None,
) -> SoftRollout:
    """G rollouts per prompt (rows prompt-major): `params.think_steps` soft steps, then a sampled discrete answer."""
    rows = [r for r in prompt_rows for _ in range(group_size)]
    lm = SoftCachedLM(model, pad_id=pad_id)
    emb = model.get_input_embeddings().weight  # (V, D)
    logits = lm.start(rows)  # (N, V)
    ws, qs, ss, soft_lp = [], [], [], []
    kw = dict(temperature=params.temperature, top_k=params.top_k, top_p=params.top_p)
    for _ in range(params.think_steps):
        st = soft_step(logits, emb, tau=params.tau, scale=params.scale, generator=generator, **kw)
        soft_lp.append(
            soft_logprob(logits, st.q_prime, st.support, scale=params.scale, temperature=params.temperature)
        )
        ws.append(st.weights)
        qs.append(st.q_prime)
        ss.append(st.support)
        logits = lm.advance_embeds(st.embedding)
    N, dev = len(rows), logits.device
    toks, tok_lp = [], []
    alive = torch.ones(N, dtype=torch.bool, device=dev)
    eos = torch.tensor(sorted(eos_ids), device=dev)
    for t in range(max_answer_tokens):
        support = support_mask(logits, top_k=params.top_k, top_p=params.top_p)
        probs = restricted_logprobs(logits, support, temperature=params.temperature).exp()
        tok = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        tok = torch.where(alive, tok, pad_id)
        toks.append(tok)
        tok_lp.append(torch.where(alive, token_logprob(logits, tok, temperature=params.temperature), 0.0))
        alive = alive & ~torch.isin(tok, eos)
        if not alive.any() or t + 1 == max_answer_tokens:
            break
        logits = lm.advance(torch.arange(N, device=dev), tok)
    answer = torch.stack(toks, 1)  # (N, A)
    mask = _upto_eos(answer, eos)
    ids, pmask = left_pad(rows, pad_id=pad_id)
    V = emb.shape[0]
    empty = torch.zeros(N, 0, V, device=dev)
    return SoftRollout(
        ids.to(dev), pmask.to(dev), torch.stack(ws, 1) if ws else empty, torch.stack(qs, 1) if qs else empty,
        torch.stack(ss, 1) if ss else empty.bool(), answer, mask.long(),
        torch.stack(soft_lp, 1) if soft_lp else torch.zeros(N, 0, device=dev), torch.stack(tok_lp, 1),
    )  # fmt: skip


def _upto_eos(answer: torch.Tensor, eos: torch.Tensor) -> torch.Tensor:
    """(N, A) bool: positions up to and including the first EOS (all when none)."""
    is_eos = torch.isin(answer, eos).long()
    before = is_eos.cumsum(1) - is_eos  # EOSs strictly before
    return before == 0


def sequence_logprobs(
    model: PreTrainedModel, ro: SoftRollout, params: SoftParams
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(N, S) log pi_theta(q'_s) of the soft steps and (N, A) log pi_theta(o_t) of the answer tokens (0 where
    masked), from one forward over [prompt, y_1 E .. y_S E, answer embeddings], with grad; and the (N, S + A)
    entropy of the tempered next-token distribution at each position (detached)."""
    emb = model.get_input_embeddings()
    E = emb.weight
    S, A = ro.weights.shape[1], ro.answer_ids.shape[1]
    inputs = torch.cat(
        [emb(ro.prompt_ids), (ro.weights.to(E.dtype) @ E).detach(), emb(ro.answer_ids)], dim=1
    )  # (N, L+S+A, D)
    mask = torch.cat([ro.prompt_mask, torch.ones_like(ro.weights[..., 0], dtype=ro.prompt_mask.dtype),
                      ro.answer_mask.to(ro.prompt_mask.dtype)], dim=1)  # fmt: skip
    logits = model(inputs_embeds=inputs, attention_mask=mask, position_ids=position_ids(mask)).logits.float()
    L = ro.prompt_ids.shape[1]
    step_logits = logits[:, L - 1 : L - 1 + S + A]  # (N, S+A, V): the logits that chose each soft step / token
    soft = soft_logprob(
        step_logits[:, :S], ro.q_prime, ro.support, scale=params.scale, temperature=params.temperature
    )  # (N, S)
    tok = token_logprob(step_logits[:, S:].reshape(-1, E.shape[0]), ro.answer_ids.reshape(-1),
                        temperature=params.temperature).view_as(ro.answer_ids)  # fmt: skip
    with torch.no_grad():
        logp_all = torch.log_softmax(step_logits / params.temperature, dim=-1)
        entropy = -(logp_all.exp() * logp_all).sum(-1)
    return soft, tok * ro.answer_mask, entropy


def as_rollout(ro: SoftRollout, *, group_size: int, eos_ids: set[int]) -> Rollout:
    """The trainer's `Rollout` of a soft rollout: the completion is [argmax token of each soft step (a stand-in,
    for decoding and rewards), answer tokens]; the mask covers every soft step and the answer up to its EOS."""
    N, S = ro.weights.shape[:2]
    stand_in = ro.weights.argmax(-1) if S else ro.answer_ids[:, :0]
    ids = torch.cat([stand_in, ro.answer_ids], dim=1)
    mask = torch.cat([torch.ones_like(stand_in), ro.answer_mask], dim=1)
    ended = torch.isin(ro.answer_ids, torch.tensor(sorted(eos_ids), device=ids.device)).any(1)
    groups = torch.arange(N // group_size, device=ids.device).repeat_interleave(group_size)
    return Rollout(ro.prompt_ids, ro.prompt_mask, ids, mask, ~ended, groups)


def rows_logprobs(
    model: PreTrainedModel, ro: SoftRollout, rows: torch.Tensor, p_ids: torch.Tensor, p_mask: torch.Tensor,
    width: int, params: SoftParams,
) -> TokenLogProbs:  # fmt: skip
    """`TokenLogProbs` of rows `rows` of a soft rollout aligned with `as_rollout`'s completion (first `width`
    columns), the prompts given trimmed (`p_ids`, `p_mask`): the trainer's numerator for SofT-GRPO rows."""
    sub = SoftRollout(*(t[rows.to(t.device)] for t in ro))._replace(prompt_ids=p_ids, prompt_mask=p_mask)
    soft, tok, entropy = sequence_logprobs(model, sub, params)
    return TokenLogProbs(torch.cat([soft, tok], dim=1)[:, :width], entropy[:, :width])
