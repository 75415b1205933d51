"""One text step's rollout and credit assignment, in named steps (`collect` calls them in this order)::

    sample (per-prompt group sizes, hinted second rollout: hooks) -> decode_and_score -> shape_rewards (hook)
      -> credit: NaN groups skipped, advantages (core), masks, token weights / masks (hooks), rows to forward

The hooks that look at the policy itself (log-probs and entropies of the sampled tokens, full-vocabulary log-probs,
the gradient of the loss, Monte-Carlo values of prefixes) get them from `PolicyProbes`, computed on demand with the
model in eval mode (`eval_mode`). Every draw of the step comes from torch's generator seeded with
`derive_seed(train.seed, step, rank)`, so a resumed run repeats the uninterrupted one.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import NamedTuple

import torch

from flowrl.config import ConfigError
from flowrl.grpo import PolicyBatch, Variant, nonzero_variance_mask, normalizer, policy_loss, truncation_mask
from flowrl.grpo import weighted_sum as weighted_reward_sum
from flowrl.grpo.advantages import group_advantages
from flowrl.grpo.hints import failed_groups, replace_failed
from flowrl.runtime.seeding import derive_seed
from flowrl.text import hooks as H
from flowrl.text.config import TextTrainConfig
from flowrl.text.evaluate import completion_text
from flowrl.text.latr import LatrParams, latr_groups
from flowrl.text.logprobs import TokenLogProbs, completion_logprobs
from flowrl.text.policy import TextPolicy
from flowrl.text.prompt_samplers import PromptSampler
from flowrl.text.prompts import left_pad
from flowrl.text.rest import PREFIX_KEY
from flowrl.text.rollout import Rollout, SamplingConfig, concat_rollouts, position_ids, sample_groups
from flowrl.text.soft_rollout import SoftParams, SoftRollout, as_rollout, soft_rollout
from flowrl.text.task_rewards import score_completions

logger = logging.getLogger(__name__)


class TrainerHooks(NamedTuple):
    """The run's hook objects, built once from `cfg.hooks` (None = off)."""

    shaper: H.ShapeFn | None
    token_weights: Callable[[H.TokenInput], H.TokenOut] | None
    token_mask: Callable[[H.TokenInput], torch.Tensor] | None
    whole_loss: H.WholeLoss | None
    sizes: H.KnapsackSizes | H.GVMSizes | None
    hints: H.Hints | None
    sampler: PromptSampler | None = None  # hooks.prompt_sampler: which rows a step rolls out (train.py calls it)


class StepData(NamedTuple):
    """One step's rollout with its credit assignment (local rows)."""

    rollout: Rollout
    rewards: torch.Tensor  # (N, K)
    total: torch.Tensor  # (N,) the reward the advantages came from: weighted sum, then shaping (NaN rows zeroed)
    adv: torch.Tensor  # (N,) per completion, or (N, C) per token (a shaping hook with token advantages)
    mask: torch.Tensor  # (N, C) float, tokens in the loss
    train_rows: torch.Tensor  # (M,) rows that are forwarded
    skipped_groups: int  # groups with a NaN / inf reward
    outcome: torch.Tensor  # (N,) reward column 0 (the verifier, for the hooks that need one)
    weights: torch.Tensor | None  # (N, C) per-token loss weights (hooks.token_weights)
    pos_weights: torch.Tensor | None  # (N,) weights of the correct completions (a whole-loss plugin's)
    guided: torch.Tensor  # (N,) bool: the row is a hint-guided completion (hooks.hints)
    old_logp: torch.Tensor | None  # (N, C) Guide: the hinted sampler's log-probs of the guided rows
    soft: SoftRollout | None = None  # SofT-GRPO (rollout.kind=soft): the soft steps behind `rollout`'s rows


class Decoded(NamedTuple):
    """A rollout's completions as text, beside the task row of each."""

    texts: list[str]  # decoded up to EOS
    ids: list[list[int]]  # (N, C) completion ids, padding zeroed
    lengths: list[int]  # completion tokens per row
    rows: list[dict]  # the task row of each completion


def regularized(cfg: TextTrainConfig) -> bool:
    """Whether a regulariser term is computed (its coefficient is non-zero at some step)."""
    return cfg.loss.kl_beta > 0 or cfg.hooks.kl_beta_end > 0


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """The model in eval mode inside (no dropout while sampling or probing), its previous mode after."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


# ----------------------------------------------------------------------------------------------------- sample


def sampling_config(cfg: TextTrainConfig, *, max_new_tokens: int | None = None) -> SamplingConfig:
    g = cfg.generation
    budget = g.max_new_tokens if max_new_tokens is None else max_new_tokens
    return SamplingConfig(budget, g.temperature, g.top_k, g.top_p, tuple(g.stop_strings))


def sample(cfg: TextTrainConfig, policy: TextPolicy, prompts: list[list[int]], sizes: list[int] | None) -> Rollout:
    """`generation.group_size` completions per prompt, or `sizes[j]` for prompt j (one `generate` per prompt)."""
    g = cfg.generation

    def run(rows: list[list[int]], size: int) -> Rollout:
        return sample_groups(
            policy.model, policy.tokenizer, rows, group_size=size, sampling=sampling_config(cfg),
            eos_ids=policy.eos_ids, prefill_once=g.prefill_once,
        )  # fmt: skip

    if sizes is None:
        return run(prompts, g.group_size)
    kept = [j for j, n in enumerate(sizes) if n > 0]
    ro = concat_rollouts([run([prompts[j]], sizes[j]) for j in kept], pad_id=policy.tokenizer.pad_token_id)
    return ro._replace(group_ids=torch.tensor(kept, device=ro.group_ids.device)[ro.group_ids])  # prompt positions


def latr_params(cfg: TextTrainConfig) -> LatrParams:
    """The LATR knobs of `cfg.rollout`."""
    r = cfg.rollout
    return LatrParams(
        r.latr_max_branch_per_token, r.latr_prob_abs, r.latr_prob_rel, r.latr_edit_dist, tuple(r.latr_lookahead),
        r.latr_return_threshold, r.latr_return_decay, tuple((int(a), float(b)) for a, b in r.latr_mix_schedule),
    )  # fmt: skip


def soft_params(cfg: TextTrainConfig) -> SoftParams:
    """The SofT-GRPO knobs of `cfg.rollout` (temperature: generation.temperature)."""
    r = cfg.rollout
    return SoftParams(
        r.soft_think_steps, r.soft_tau, r.soft_scale, cfg.generation.temperature, r.soft_top_k, r.soft_top_p
    )


def score(reward_fns: list, texts: list[str], rows: list[dict], terminated: list[bool]) -> torch.Tensor:
    """`(N, K)` rewards of completion texts against their task rows (metadata: the row plus ``terminated``)."""
    metadata = [{**r, "terminated": t} for r, t in zip(rows, terminated, strict=True)]
    return score_completions(reward_fns, texts, [r["prompt"] for r in rows], metadata)[0]


def decode(policy: TextPolicy, ro: Rollout, rows: list[dict], indices: list[int]) -> Decoded:
    """Completions decoded up to EOS, with the task row of each (`indices[group]` into `rows`). A ReST-GRPO row's
    partial solution (column `rest.PREFIX_KEY`, in the prompt the policy saw) starts the scored text."""
    ids = (ro.completion_ids * ro.completion_mask).tolist()
    lengths = ro.completion_mask.sum(-1).tolist()
    task_rows = [rows[indices[int(k)]] for k in ro.group_ids.tolist()]
    texts = [
        row.get(PREFIX_KEY, "") + completion_text(policy.tokenizer, r[:n], eos_ids=policy.eos_ids)[0]
        for r, n, row in zip(ids, lengths, task_rows, strict=True)
    ]
    return Decoded(texts, ids, lengths, task_rows)


def decode_and_score(
    policy: TextPolicy, reward_fns: list, rows: list[dict], indices: list[int], ro: Rollout
) -> tuple[Decoded, torch.Tensor]:
    """The decoded completions and their `(N, K)` rewards."""
    dec = decode(policy, ro, rows, indices)
    return dec, score(reward_fns, dec.texts, dec.rows, [not bool(t) for t in ro.truncated.tolist()])


def presample(
    cfg: TextTrainConfig, policy: TextPolicy, reward_fns: list, rows: list[dict], prompts: list[list[int]],
    indices: list[int], n0: int,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """GVM's pre-sampling pass: `n0` completions per prompt -> per-prompt acceptance rate (reward.names[0] > 0) and
    gradient norm, on the output head, of the mean log-likelihood of the accepted completions. Returns two `(P,)`."""
    ro = sample(cfg, policy, prompts, [n0] * len(prompts))
    accept = decode_and_score(policy, reward_fns[:1], rows, indices, ro)[1][:, 0] > 0  # (N,)
    head = policy.model.get_output_embeddings().weight
    if not head.requires_grad:
        raise ConfigError("hooks.group_sizes=gvm measures gradient norms on the output head, which LoRA freezes: "
                          "train it with full fine-tuning (model.lora_rank=0).")  # fmt: skip
    groups = ro.group_ids.cpu()
    rates, norms = torch.zeros(len(prompts)), torch.zeros(len(prompts))
    with torch.enable_grad():
        lp = completion_logprobs(
            policy.model, ro.prompt_ids, ro.prompt_mask, ro.completion_ids, ro.completion_mask,
            temperature=cfg.generation.temperature, chunk_size=cfg.train.logprob_chunk,
        ).logp  # fmt: skip
        m = ro.completion_mask.float()
        seq = (lp * m).sum(-1) / m.sum(-1).clamp(min=1)  # (N,) mean token log-likelihood
        for j in range(len(prompts)):
            rows_j = (groups == j).to(seq.device)
            rates[j] = accept[groups == j].float().mean()
            ok = rows_j & accept.to(seq.device)
            if bool(ok.any()):
                (grad,) = torch.autograd.grad(seq[ok].mean(), head, retain_graph=True)
                norms[j] = grad.norm().cpu()
    return rates, norms


def apply_hints(
    cfg: TextTrainConfig,
    policy: TextPolicy,
    hints: H.Hints,
    reward_fns: list,
    rows: list[dict],
    prompt_ids: list[list[int]],
    indices: list[int],
    ro: Rollout,
    rewards: torch.Tensor,
    *,
    step: int,
) -> tuple[Rollout, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The hints hook: a hinted second rollout for every group whose completions all failed (reward.names[0] <= 0),
    tiers tried in the planner's order until one guided completion succeeds; the first success replaces the group's
    first failed row. Returns the new rollout, its `(N, K)` rewards, `(N,)` guided flags, and for Guide the `(N, C)`
    old log-probs of the hinted sampler (0 on the forced hint tokens; other rows 0 and unused)."""
    g, tok, model = cfg.generation, policy.tokenizer, policy.model
    groups = ro.group_ids.cpu()
    found = []  # (group, hint ids, generated ids, rewards (K,), hinted-sampler log-probs of those ids, truncated)
    for j in torch.unique(groups[failed_groups(rewards[:, 0], groups)]).tolist():
        key, row = indices[j], rows[indices[j]]
        for tier in hints.planner.tiers_to_try(key, step=step):
            hint = hints.text(row, tier)
            hint_ids = tok(hint, add_special_tokens=False)["input_ids"]
            if len(hint_ids) >= g.max_new_tokens:
                continue
            h_ro = sample_groups(
                model, tok, [prompt_ids[key] + hint_ids], group_size=hints.guided_samples,
                sampling=sampling_config(cfg, max_new_tokens=g.max_new_tokens - len(hint_ids)),
                eos_ids=policy.eos_ids, prefill_once=g.prefill_once,
            )  # fmt: skip
            dec = decode(policy, h_ro, [row], [0])  # one group: the hinted prompt
            terminated = [not bool(t) for t in h_ro.truncated.tolist()]
            h_rewards = score(reward_fns, [hint + t for t in dec.texts], dec.rows, terminated)  # (G_h, K)
            ok = torch.nonzero(h_rewards[:, 0] > 0).flatten()
            if ok.numel():
                k, n = int(ok[0]), dec.lengths[int(ok[0])]
                hints.planner.report(key, tier)
                old = completion_logprobs(
                    model, h_ro.prompt_ids[k : k + 1], h_ro.prompt_mask[k : k + 1],
                    h_ro.completion_ids[k : k + 1, :n], h_ro.completion_mask[k : k + 1, :n],
                    temperature=g.temperature, chunk_size=cfg.train.logprob_chunk,
                ).logp[0].cpu()  # fmt: skip
                found.append((j, hint_ids, dec.ids[k][:n], h_rewards[k], old, bool(h_ro.truncated[k])))
                break
    n_rows = groups.numel()
    guided = torch.zeros(n_rows, dtype=torch.bool)
    if not found:
        return ro, rewards, guided, None
    swap = replace_failed(rewards[:, 0], groups, torch.ones(len(found)), torch.tensor([f[0] for f in found]))  # (N,)
    prompts = [ro.prompt_ids[i][ro.prompt_mask[i].bool()].tolist() for i in range(n_rows)]
    comps = [ro.completion_ids[i][: int(ro.completion_mask[i].sum())].tolist() for i in range(n_rows)]
    olds: list[list[float]] = [[] for _ in range(n_rows)]
    truncated, rewards = ro.truncated.clone(), rewards.clone()
    for i in torch.nonzero(swap >= 0).flatten().tolist():
        _, hint_ids, gen, r, old, trunc = found[int(swap[i])]
        if hints.mode == "scaf_grpo":  # the hint stays in the prompt; trained on-policy in that context
            prompts[i] = prompts[i] + hint_ids
            comps[i] = gen
        else:  # Guide: the hint tokens start the response to the plain prompt; the hinted sampler forced them
            comps[i] = hint_ids + gen
            olds[i] = [0.0] * len(hint_ids) + old.tolist()
        truncated[i], rewards[i], guided[i] = trunc, r, True
    p_ids, p_mask = left_pad(prompts, pad_id=tok.pad_token_id)  # (N, P')
    width = max(len(c) for c in comps)
    c_ids = torch.full((n_rows, width), tok.pad_token_id, dtype=torch.long)
    c_mask = torch.zeros((n_rows, width), dtype=torch.long)
    old_logp = torch.zeros(n_rows, width)
    for i, c in enumerate(comps):
        c_ids[i, : len(c)], c_mask[i, : len(c)] = torch.tensor(c, dtype=torch.long), 1
        old_logp[i, : len(olds[i])] = torch.tensor(olds[i])
    dev = ro.prompt_ids.device
    new = Rollout(p_ids.to(dev), p_mask.to(dev), c_ids.to(dev), c_mask.to(dev), truncated, ro.group_ids)
    return new, rewards, guided, (old_logp if hints.mode == "guide" else None)


# ----------------------------------------------------------------------------------------------------- probes


class PolicyProbes:
    """What a hook may ask of the policy about this step's rollout, computed on demand (`H.ShapingInput`,
    `H.TokenInput` receive these methods)."""

    def __init__(
        self, cfg: TextTrainConfig, policy: TextPolicy, variant: Variant, reward_fns: list, ro: Rollout,
        dec: Decoded, mask: torch.Tensor, keys: torch.Tensor,
    ) -> None:  # fmt: skip
        self.cfg, self.policy, self.variant, self.reward_fns = cfg, policy, variant, reward_fns
        self.ro, self.dec, self.mask, self.keys = ro, dec, mask, keys
        self._sampling: TokenLogProbs | None = None

    def _logprobs(self, model: torch.nn.Module | None = None) -> TokenLogProbs:
        ro, g = self.ro, self.cfg.generation
        return completion_logprobs(
            self.policy.model if model is None else model, ro.prompt_ids, ro.prompt_mask, ro.completion_ids,
            ro.completion_mask, temperature=g.temperature, chunk_size=self.cfg.train.logprob_chunk,
        )  # fmt: skip

    def logprobs_under(self, model: torch.nn.Module) -> TokenLogProbs:
        """`(N, C)` log-probs and entropies of the sampled tokens under another `model` (GRPO-CARE's EMA; no grad)."""
        with eval_mode(model):
            lp = self._logprobs(model)
        return TokenLogProbs(lp.logp.cpu(), lp.entropy.cpu())

    def sampling_logprobs(self) -> TokenLogProbs:
        """`(N, C)` log-probs and entropies of the sampled tokens (no grad, cached)."""
        if self._sampling is None:
            with eval_mode(self.policy.model):
                lp = self._logprobs()
            self._sampling = TokenLogProbs(lp.logp.cpu(), lp.entropy.cpu())
        return self._sampling

    def full_logprobs(self) -> torch.Tensor:
        """`(N, C, V)` full-vocabulary log-probs at each completion position (TW-GRPO's token weights)."""
        ro = self.ro
        ids = torch.cat([ro.prompt_ids, ro.completion_ids], 1)
        att = torch.cat([ro.prompt_mask, ro.completion_mask], 1)
        with eval_mode(self.policy.model):
            logits = self.policy.model(input_ids=ids, attention_mask=att, position_ids=position_ids(att)).logits
        P, C = ro.prompt_ids.shape[1], ro.completion_ids.shape[1]
        return torch.log_softmax(logits.float()[:, P - 1 : P + C - 1] / self.cfg.generation.temperature, -1).cpu()

    def policy_gradient(self, reward: torch.Tensor) -> torch.Tensor:
        """Flat gradient on the output head of the variant's loss (beta 0) for `reward` `(N,)` (dynamic weights)."""
        head = self.policy.model.get_output_embeddings().weight
        if not head.requires_grad:
            raise ConfigError("hooks.shaping=dynamic_weights measures gradients on the output head, which LoRA "
                              "freezes: train it with full fine-tuning (model.lora_rank=0).")  # fmt: skip
        with torch.enable_grad():
            lp = self._logprobs()
            m = self.mask.to(lp.logp.device)
            adv = group_advantages(reward.float(), self.keys).to(lp.logp.device)
            batch = PolicyBatch(lp.logp, lp.logp.detach(), adv, m)
            loss = policy_loss(self.variant.objective._replace(beta=0.0), batch, norm=normalizer(m))[0]
            (grad,) = torch.autograd.grad(loss, head)
        return grad.flatten().cpu()

    def mc_values(self, prefixes: list[tuple[int, int]], n: int) -> torch.Tensor:
        """Mean reward.names[0] outcome of `n` continuations of each (row, t) prefix (prompt + the row's first t
        completion tokens), each within the row's token budget (Segment PO's Monte-Carlo values)."""
        ro, dec, g, tok = self.ro, self.dec, self.cfg.generation, self.policy.tokenizer
        prefix_rows = [ro.prompt_ids[i][ro.prompt_mask[i].bool()].tolist() + dec.ids[i][:t] for i, t in prefixes]
        budget = g.max_new_tokens - min(t for _, t in prefixes)
        sampling = sampling_config(self.cfg, max_new_tokens=budget)
        with eval_mode(self.policy.model):
            mc = sample_groups(self.policy.model, tok, prefix_rows, group_size=n, sampling=sampling,
                               eos_ids=self.policy.eos_ids, prefill_once=g.prefill_once)  # fmt: skip
        texts, rows, terminated = [], [], []
        for r in range(mc.group_ids.numel()):
            i, t = prefixes[r // n]
            cont = mc.completion_ids[r][: int(mc.completion_mask[r].sum())].tolist()[: g.max_new_tokens - t]
            text, stopped = completion_text(tok, dec.ids[i][:t] + cont, eos_ids=self.policy.eos_ids)
            texts.append(text)
            rows.append(dec.rows[i])
            terminated.append(stopped)
        return score(self.reward_fns[:1], texts, rows, terminated)[:, 0].view(len(prefixes), n).mean(-1)


# ----------------------------------------------------------------------------------------------------- the step


@torch.no_grad()
def collect(
    cfg: TextTrainConfig,
    policy: TextPolicy,
    variant: Variant,
    reward_fns: list,
    rows: list[dict],
    prompt_ids: list[list[int]],
    indices: list[int],
    *,
    step: int,
    rank: int,
    hooks: TrainerHooks,
) -> StepData:
    """Sample the groups of `indices`, score them, shape the rewards, and build advantages, token weights and the
    loss mask (the hooks of `cfg.hooks` are called here, in this order)."""
    torch.manual_seed(derive_seed(cfg.train.seed, step, rank))
    rewards, soft = None, None
    with eval_mode(policy.model):
        sizes = None
        if hooks.sizes is not None:  # hook: per-prompt group sizes

            def presample_n(n0: int) -> tuple[torch.Tensor, torch.Tensor]:
                return presample(cfg, policy, reward_fns, rows, [prompt_ids[i] for i in indices], indices, n0)

            budget = len(indices) * cfg.generation.group_size
            sizes = hooks.sizes.sizes(indices, budget=budget, presample=presample_n)
        if cfg.rollout.kind == "latr":  # LATR: the group grown as a lookahead tree (flowrl/text/latr.py)
            ro = latr_groups(
                policy.model, policy.tokenizer, [prompt_ids[i] for i in indices], group_size=cfg.generation.group_size,
                sampling=sampling_config(cfg), eos_ids=policy.eos_ids, params=latr_params(cfg), step=step,
                prefill_once=cfg.generation.prefill_once,
            ).rollout  # fmt: skip
        elif cfg.rollout.kind == "soft":  # SofT-GRPO: soft thinking steps, then a discrete answer
            G = cfg.generation.group_size
            soft = soft_rollout(
                policy.model, [prompt_ids[i] for i in indices], group_size=G,
                max_answer_tokens=cfg.generation.max_new_tokens - cfg.rollout.soft_think_steps,
                eos_ids=policy.eos_ids, pad_id=policy.tokenizer.pad_token_id, params=soft_params(cfg),
            )  # fmt: skip
            ro = as_rollout(soft, group_size=G, eos_ids=policy.eos_ids)
        else:
            ro = sample(cfg, policy, [prompt_ids[i] for i in indices], sizes)
        guided, hinted_old = torch.zeros(ro.group_ids.numel(), dtype=torch.bool), None
        if hooks.hints is not None:  # hook: hinted second rollout for the groups that all failed
            rewards = decode_and_score(policy, reward_fns, rows, indices, ro)[1]
            ro, rewards, guided, hinted_old = apply_hints(
                cfg, policy, hooks.hints, reward_fns, rows, prompt_ids, indices, ro, rewards, step=step
            )
    if rewards is None:
        dec, rewards = decode_and_score(policy, reward_fns, rows, indices, ro)  # (N, K)
    else:
        dec = decode(policy, ro, rows, indices)
    groups = ro.group_ids.cpu()
    keys = torch.tensor(indices)[groups] if cfg.hooks.group_ids == "prompt" else groups  # (N,) advantage group keys
    mask = ro.completion_mask.float().cpu()  # (N, C)
    probes = PolicyProbes(cfg, policy, variant, reward_fns, ro, dec, mask, keys)
    total = weighted_reward_sum(rewards, weights=torch.tensor(cfg.reward.weights))  # (N,)
    token_adv = None
    if hooks.shaper is not None:  # hook: reward shaping
        shaped = hooks.shaper(
            H.ShapingInput(
                rewards, total, rewards[:, 0], mask.sum(-1), ~ro.truncated.cpu(), keys, mask, dec.texts,
                [policy.tokenizer.convert_ids_to_tokens(r[:n]) for r, n in zip(dec.ids, dec.lengths, strict=True)],
                [str(r["answer"]) for r in dec.rows], step, cfg.generation.max_new_tokens, probes.sampling_logprobs,
                probes.policy_gradient, policy.model, probes.logprobs_under,
            )
        )  # fmt: skip
        total, token_adv = shaped.total.float().cpu(), shaped.token_adv
    return credit(cfg, variant, hooks, ro, rewards, total, token_adv, keys, mask, probes, indices, step=step)._replace(
        guided=guided, old_logp=hinted_old, soft=soft
    )


def credit(
    cfg: TextTrainConfig, variant: Variant, hooks: TrainerHooks, ro: Rollout, rewards: torch.Tensor,
    total: torch.Tensor, token_adv: torch.Tensor | None, keys: torch.Tensor, mask: torch.Tensor,
    probes: PolicyProbes, indices: list[int], *, step: int,
) -> StepData:  # fmt: skip
    """Rewards -> advantages, the loss mask and weights, and the rows worth a forward pass: groups with a NaN / inf
    total are skipped (zero advantage, masked out, counted); token hooks run on the masked advantages."""
    groups, outcome = ro.group_ids.cpu(), rewards[:, 0]
    bad = torch.isin(groups, torch.unique(groups[~torch.isfinite(total)]))  # (N,) rows of groups with a NaN reward
    skipped = int(torch.unique(groups[bad]).numel())
    if skipped:
        logger.warning(
            "step %d: %d group(s) had a NaN / inf reward and were skipped (counted in metric skipped_groups).",
            step,
            skipped,
        )
    total = torch.where(bad, 0.0, total)
    adv = variant.advantages(total, keys)  # (N,)
    if token_adv is not None:
        adv = adv[:, None] + token_adv.float().cpu() * mask  # (N, C)
    adv = torch.where(bad if adv.ndim == 1 else bad[:, None], 0.0, adv)
    if cfg.loss.mask_truncated:
        mask = truncation_mask(mask, ro.truncated.cpu())
    if variant.drop_constant_groups:
        mask = mask * nonzero_variance_mask(total, groups)[:, None].float()
    mask = mask * (~bad)[:, None].float()
    weights = None
    if hooks.token_weights is not None or hooks.token_mask is not None:
        token_in = H.TokenInput(
            adv, ro.completion_ids.cpu(), mask, keys, step, probes.sampling_logprobs, probes.full_logprobs, outcome,
            probes.mc_values,
        )  # fmt: skip
        if hooks.token_weights is not None:  # hook: per-token weights (may reshape the advantages)
            adv, weights = hooks.token_weights(token_in)
        if hooks.token_mask is not None:  # hook: token down-sampling
            mask = hooks.token_mask(token_in._replace(adv=adv)).float()
    pos_weights = None
    if hooks.whole_loss is not None and hooks.whole_loss.pos_weights is not None:
        pos_weights = hooks.whole_loss.pos_weights(mask.sum(-1), outcome, groups, cfg.generation.max_new_tokens)
    if hooks.sizes is not None:
        hooks.sizes.report(indices, outcome, groups)
    forward = mask.sum(-1) > 0
    if hooks.whole_loss is not None:  # a discriminative loss only sees groups with both outcomes
        forward &= nonzero_variance_mask(outcome, groups)
    elif cfg.train.skip_zero_advantage and not regularized(cfg):
        per_token = adv if adv.ndim == 2 else adv[:, None]
        forward &= ((per_token * mask) != 0).any(-1)
    none = torch.zeros(groups.numel(), dtype=torch.bool)
    return StepData(
        ro, rewards, total, adv, mask, torch.nonzero(forward).flatten(), skipped, outcome, weights, pos_weights, none,
        None,
    )  # fmt: skip
