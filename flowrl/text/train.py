"""The text GRPO trainer: `flowrl train-text`.

One step, for any GRPO-family loss of `flowrl.grpo.VARIANTS` (a token plays the role of a denoising step)::

    prompts (P per step, from the task JSONL) -> prefill each prompt once, sample G completions with `generate`
      -> decode up to EOS / stop string -> rewards (N, K) -> weighted sum -> group advantages (core)
      -> masks: completion tokens, truncation (core), zero-variance groups (core), NaN-reward groups skipped
      -> rows with signal in micro-batches, padding trimmed -> fp32 chunked log-probs (+ reference, KL estimator)
      -> policy_loss (core: ratio, surrogate, reduction with the step's global normaliser) -> backward
      -> gradient sum over processes -> clip -> AdamW -> metrics (TRL names), evaluation, checkpoint

Completions whose advantage is zero at every token (under GRPO: the groups whose rewards are all equal) have exactly
zero gradient without a KL term: they are counted in the normaliser (as TRL does) but never forwarded.

The LLM variants of docs/papers_llm.md plug in at the named extension points of `flowrl/text/hooks.py` (config
section `hooks`): reward shaping between scoring and advantages, per-token weights and masks, the regulariser
(reference KL, a teacher's KL, LLDS; coefficient schedule), a whole-loss plugin replacing `policy_loss`, stable
prompt ids as group keys, and per-prompt group sizes. Each hook is called at one place below (`collect`, `update`).

Every step's prompts and sampling seed derive from (seed, step, rank), so resuming from a checkpoint repeats the
uninterrupted run (the state of a stateful hook or advantage tracker is not checkpointed: it restarts empty).

Run: ``flowrl train-text`` (the shipped arithmetic model, DAPO, 14 minutes on CPU), ``flowrl train-text --preset
grpo train.time_limit_minutes=2``, ``flowrl train-text --resume runs/<name>``, ``flowrl train-text
model.path=/my/model task.train_file=train.jsonl task.test_file=test.jsonl``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch

from flowrl.config import ConfigError, dump_yaml, from_dict, load_yaml_file, load_yaml_text, merge, parse_overrides
from flowrl.grpo import (
    PolicyBatch,
    Variant,
    get_variant,
    group_stats,
    nonzero_variance_mask,
    normalizer,
    policy_loss,
    top_entropy_mask,
    truncation_mask,
    weighted_sum,
)
from flowrl.grpo.advantages import group_advantages
from flowrl.grpo.hints import failed_groups, guided_old_logp, replace_failed
from flowrl.grpo.schedules import LinearSchedule
from flowrl.grpo.variants_llm import with_beta
from flowrl.text import hooks as H
from flowrl.text.config import TextTrainConfig
from flowrl.text.data import load_jsonl, step_rows
from flowrl.text.evaluate import completion_text, greedy_accuracy
from flowrl.text.logprobs import TokenLogProbs, completion_logprobs
from flowrl.text.policy import (
    TextPolicy,
    base_model,
    load_policy,
    load_teacher,
    reference_logprobs,
    soup_model,
    trainable_parameters,
)
from flowrl.text.prompts import encode_prompts, left_pad
from flowrl.text.rollout import Rollout, SamplingConfig, concat_rollouts, position_ids, sample_groups
from flowrl.text.task_rewards import load_text_reward, score_completions

REPO_ROOT = Path(__file__).resolve().parents[2]
PRESETS_DIR = Path(__file__).resolve().parent / "presets"
DEFAULT_PRESET = "dapo"
PRESETS = ("grpo", "dr_grpo", "dapo", "bnpo", "gspo", "cispo")
# the LLM variants of docs/papers_llm.md, each a core variant plus the hooks it needs (flowrl/text/hooks.py)
LLM_PRESETS = (
    "ngrpo", "dcpo", "spo", "riskpo", "grpo_d", "kdrl", "llds", "d3s", "gtpo", "tw_grpo", "grpo_lambda", "unlikely",
    "think_short", "posterior_grpo", "tp_grpo", "mo_grpo", "dynamic_weighting", "disco", "drpo", "salsa", "knapsack",
    "gvm", "scaf_grpo", "guide", "segment_po",
)  # fmt: skip


class TextTrainResult(NamedTuple):
    run_dir: Path
    base_accuracy: float | None
    final_accuracy: float | None
    steps: int
    minutes: float


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


class TrainerHooks(NamedTuple):
    """The run's hook objects, built once from `cfg.hooks` (None = off)."""

    shaper: H.ShapeFn | None
    token_weights: Callable[[H.TokenInput], H.TokenOut] | None
    token_mask: Callable[[H.TokenInput], torch.Tensor] | None
    whole_loss: H.WholeLoss | None
    sizes: H.KnapsackSizes | H.GVMSizes | None
    hints: H.Hints | None


# ----------------------------------------------------------------------------------------------------- config


def resolve_path(path: str, *, what: str) -> Path:
    """`path` relative to the current directory or, failing that, to the flowrl repository."""
    for candidate in (Path(path), REPO_ROOT / path):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"The {what} {path!r} was not found (looked in {Path.cwd()} and {REPO_ROOT}).")


def preset_path(name: str) -> Path:
    """`name` as a file path, or the packaged preset `flowrl/text/presets/<name>.yaml`."""
    if name.endswith((".yaml", ".yml")) or "/" in name:
        return Path(name)
    path = PRESETS_DIR / f"{name}.yaml"
    if not path.is_file():
        valid = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
        raise ConfigError(f"Unknown text preset {name!r}. Valid: {valid}, or a path to a YAML file.")
    return path


def load_config(*, preset: str | None, overrides: list[str]) -> TextTrainConfig:
    """Defaults < preset (default: dapo) < ``key.path=value`` overrides."""
    data = load_yaml_file(preset_path(preset or DEFAULT_PRESET))
    return from_dict(TextTrainConfig, merge(data, parse_overrides(overrides)))


def build_variant(cfg: TextTrainConfig) -> Variant:
    """The loss variant with the configured KL weight; dr_grpo's constant normaliser uses max_new_tokens."""
    kwargs = dict(cfg.loss.kwargs)
    if cfg.loss.variant == "dr_grpo":
        kwargs.setdefault("max_len", cfg.generation.max_new_tokens)
    try:
        return get_variant(cfg.loss.variant, beta=cfg.loss.kl_beta, **kwargs)
    except TypeError as e:
        raise ConfigError(f"loss.kwargs {sorted(kwargs)} do not fit variant {cfg.loss.variant!r}: {e}") from e
    except ValueError as e:
        raise ConfigError(str(e)) from e


def build_hooks(cfg: TextTrainConfig) -> TrainerHooks:
    """The hook objects named in `cfg.hooks`, with their keyword arguments."""
    h = cfg.hooks

    def make(table: dict, name: str, kwargs: dict, field: str):
        if not name:
            return None
        try:
            return table[name](**kwargs)
        except TypeError as e:
            raise ConfigError(f"hooks.{field}_kwargs {sorted(kwargs)} do not fit hooks.{field}={name!r}: {e}") from e

    sizes = None
    if h.group_sizes != "fixed":
        try:
            sizes = H.GROUP_SIZES[h.group_sizes](**h.group_sizes_kwargs)
        except TypeError as e:
            raise ConfigError(
                f"hooks.group_sizes_kwargs {sorted(h.group_sizes_kwargs)} do not fit {h.group_sizes}: {e}"
            ) from e
    return TrainerHooks(
        shaper=make(H.SHAPERS, h.shaping, h.shaping_kwargs, "shaping"),
        token_weights=make(H.TOKEN_WEIGHTS, h.token_weights, h.token_weights_kwargs, "token_weights"),
        token_mask=make(H.TOKEN_MASKS, h.token_mask, h.token_mask_kwargs, "token_mask"),
        whole_loss=make(H.WHOLE_LOSSES, h.whole_loss, h.whole_loss_kwargs, "whole_loss"),
        sizes=sizes,
        hints=make(H.HINTS, h.hints, h.hints_kwargs, "hints"),
    )


def regularized(cfg: TextTrainConfig) -> bool:
    """Whether a regulariser term is computed (its coefficient is non-zero at some step)."""
    return cfg.loss.kl_beta > 0 or cfg.hooks.kl_beta_end > 0


def check_context(cfg: TextTrainConfig, policy: TextPolicy) -> None:
    """Prompt budget + completion budget must fit the model's context."""
    limit = base_model(policy).config.to_dict().get("max_position_embeddings")
    need = cfg.generation.max_prompt_length + max(cfg.generation.max_new_tokens, cfg.eval.max_new_tokens)
    if limit is not None and need > limit:
        raise ConfigError(
            f"generation.max_prompt_length ({cfg.generation.max_prompt_length}) + max_new_tokens "
            f"({max(cfg.generation.max_new_tokens, cfg.eval.max_new_tokens)}) = {need} exceeds the model's context "
            f"of {limit} positions. Lower generation.max_prompt_length or the new-token budgets."
        )


# ----------------------------------------------------------------------------------------------------- phases


def _seed(*keys: int) -> int:
    seed = 0
    for k in keys:
        seed = (seed * 1_000_003 + int(k)) % (2**63 - 1)
    return seed


def _sample(cfg: TextTrainConfig, policy: TextPolicy, prompts: list[list[int]], sizes: list[int] | None) -> Rollout:
    """`generation.group_size` completions per prompt, or `sizes[j]` for prompt j (one `generate` per prompt)."""
    g = cfg.generation
    sampling = SamplingConfig(g.max_new_tokens, g.temperature, g.top_k, g.top_p, tuple(g.stop_strings))

    def run(rows: list[list[int]], size: int) -> Rollout:
        return sample_groups(
            policy.model,
            policy.tokenizer,
            rows,
            group_size=size,
            sampling=sampling,
            eos_ids=policy.eos_ids,
            prefill_once=g.prefill_once,
        )

    if sizes is None:
        return run(prompts, g.group_size)
    kept = [j for j, n in enumerate(sizes) if n > 0]
    ro = concat_rollouts([run([prompts[j]], sizes[j]) for j in kept], pad_id=policy.tokenizer.pad_token_id)
    return ro._replace(group_ids=torch.tensor(kept, device=ro.group_ids.device)[ro.group_ids])  # prompt positions


def _presample(
    cfg: TextTrainConfig, policy: TextPolicy, reward_fns: list, rows: list[dict], prompts: list[list[int]],
    indices: list[int], n0: int,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """GVM's pre-sampling pass: `n0` completions per prompt -> per-prompt acceptance rate (reward.names[0] > 0) and
    gradient norm, on the output head, of the mean log-likelihood of the accepted completions. Returns two `(P,)`."""
    ro = _sample(cfg, policy, prompts, [n0] * len(prompts))
    accept = _score(policy, reward_fns[:1], rows, indices, ro)[:, 0] > 0  # (N,)
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


def _full_logprobs(model, ro: Rollout, *, temperature: float) -> torch.Tensor:
    """`(N, C, V)` full-vocabulary log-probs at each completion position (TW-GRPO's token weights)."""
    ids = torch.cat([ro.prompt_ids, ro.completion_ids], 1)
    att = torch.cat([ro.prompt_mask, ro.completion_mask], 1)
    logits = model(input_ids=ids, attention_mask=att, position_ids=position_ids(att)).logits.float()
    P, C = ro.prompt_ids.shape[1], ro.completion_ids.shape[1]
    return torch.log_softmax(logits[:, P - 1 : P + C - 1] / temperature, -1).cpu()


def _score(policy: TextPolicy, reward_fns: list, rows: list[dict], indices: list[int], ro: Rollout) -> torch.Tensor:
    """`(N, K)` rewards of a rollout's completions (decoded up to EOS) against their task rows."""
    comp = (ro.completion_ids * ro.completion_mask).tolist()
    lengths = ro.completion_mask.sum(-1).tolist()
    texts = [
        completion_text(policy.tokenizer, r[:n], eos_ids=policy.eos_ids)[0] for r, n in zip(comp, lengths, strict=True)
    ]
    group_rows = [rows[indices[int(k)]] for k in ro.group_ids.tolist()]
    metadata = [{**r, "terminated": not bool(t)} for r, t in zip(group_rows, ro.truncated.tolist(), strict=True)]
    return score_completions(reward_fns, texts, [r["prompt"] for r in group_rows], metadata)[0]


def _apply_hints(
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
            sampling = SamplingConfig(
                g.max_new_tokens - len(hint_ids), g.temperature, g.top_k, g.top_p, tuple(g.stop_strings)
            )
            h_ro = sample_groups(
                model, tok, [prompt_ids[key] + hint_ids], group_size=hints.guided_samples, sampling=sampling,
                eos_ids=policy.eos_ids, prefill_once=g.prefill_once,
            )  # fmt: skip
            lens = h_ro.completion_mask.sum(-1).tolist()
            comp = (h_ro.completion_ids * h_ro.completion_mask).tolist()
            texts = [
                hint + completion_text(tok, c[:n], eos_ids=policy.eos_ids)[0] for c, n in zip(comp, lens, strict=True)
            ]
            meta = [{**row, "terminated": not bool(t)} for t in h_ro.truncated.tolist()]
            h_rewards, _ = score_completions(reward_fns, texts, [row["prompt"]] * len(texts), meta)  # (G_h, K)
            ok = torch.nonzero(h_rewards[:, 0] > 0).flatten()
            if ok.numel():
                k, n = int(ok[0]), lens[int(ok[0])]
                hints.planner.report(key, tier)
                old = completion_logprobs(
                    model, h_ro.prompt_ids[k : k + 1], h_ro.prompt_mask[k : k + 1],
                    h_ro.completion_ids[k : k + 1, :n], h_ro.completion_mask[k : k + 1, :n],
                    temperature=g.temperature, chunk_size=cfg.train.logprob_chunk,
                ).logp[0].cpu()  # fmt: skip
                found.append((j, hint_ids, comp[k][:n], h_rewards[k], old, bool(h_ro.truncated[k])))
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
    g = cfg.generation
    torch.manual_seed(_seed(cfg.train.seed, step, rank))
    model = policy.model
    was_training = model.training
    model.eval()
    try:
        sizes = None
        if hooks.sizes is not None:  # hook: per-prompt group sizes

            def presample(n0: int) -> tuple[torch.Tensor, torch.Tensor]:
                prompts = [prompt_ids[i] for i in indices]
                return _presample(cfg, policy, reward_fns, rows, prompts, indices, n0)

            sizes = hooks.sizes.sizes(indices, budget=len(indices) * g.group_size, presample=presample)
        ro = _sample(cfg, policy, [prompt_ids[i] for i in indices], sizes)
        guided, hinted_old = torch.zeros(ro.group_ids.numel(), dtype=torch.bool), None
        if hooks.hints is not None:  # hook: hinted second rollout for the groups that all failed
            rewards = _score(policy, reward_fns, rows, indices, ro)
            ro, rewards, guided, hinted_old = _apply_hints(
                cfg, policy, hooks.hints, reward_fns, rows, prompt_ids, indices, ro, rewards, step=step
            )
    finally:
        model.train(was_training)
    comp_rows = (ro.completion_ids * ro.completion_mask).tolist()
    lengths = ro.completion_mask.sum(-1).tolist()
    texts = [
        completion_text(policy.tokenizer, r[:n], eos_ids=policy.eos_ids)[0]
        for r, n in zip(comp_rows, lengths, strict=True)
    ]
    group_rows = [rows[indices[int(k)]] for k in ro.group_ids.tolist()]
    metadata = [{**r, "terminated": not bool(t)} for r, t in zip(group_rows, ro.truncated.tolist(), strict=True)]
    if hooks.hints is None:
        rewards, _ = score_completions(reward_fns, texts, [r["prompt"] for r in group_rows], metadata)  # (N, K)
    total = weighted_sum(rewards, weights=torch.tensor(cfg.reward.weights))  # (N,)
    groups = ro.group_ids.cpu()
    keys = torch.tensor(indices)[groups] if cfg.hooks.group_ids == "prompt" else groups  # (N,) advantage group keys
    outcome = rewards[:, 0]
    mask = ro.completion_mask.float().cpu()  # (N, C)
    temp, chunk = g.temperature, cfg.train.logprob_chunk
    cache: dict[str, object] = {}

    def sampling_logprobs() -> TokenLogProbs:
        if "lp" not in cache:
            model.eval()
            lp = completion_logprobs(
                model, ro.prompt_ids, ro.prompt_mask, ro.completion_ids, ro.completion_mask,
                temperature=temp, chunk_size=chunk,
            )  # fmt: skip
            model.train(was_training)
            cache["lp"] = TokenLogProbs(lp.logp.cpu(), lp.entropy.cpu())
        return cache["lp"]

    def full_logprobs() -> torch.Tensor:
        model.eval()
        out = _full_logprobs(model, ro, temperature=temp)
        model.train(was_training)
        return out

    def policy_gradient(reward: torch.Tensor) -> torch.Tensor:
        """Flat gradient on the output head of the variant's loss (beta 0) for `reward` `(N,)` (dynamic weights)."""
        head = model.get_output_embeddings().weight
        if not head.requires_grad:
            raise ConfigError("hooks.shaping=dynamic_weights measures gradients on the output head, which LoRA "
                              "freezes: train it with full fine-tuning (model.lora_rank=0).")  # fmt: skip
        with torch.enable_grad():
            lp = completion_logprobs(
                model, ro.prompt_ids, ro.prompt_mask, ro.completion_ids, ro.completion_mask,
                temperature=temp, chunk_size=chunk,
            )  # fmt: skip
            m = mask.to(lp.logp.device)
            adv = group_advantages(reward.float(), keys).to(lp.logp.device)
            batch = PolicyBatch(lp.logp, lp.logp.detach(), adv, m)
            loss = policy_loss(variant.objective._replace(beta=0.0), batch, norm=normalizer(m))[0]
            (grad,) = torch.autograd.grad(loss, head)
        return grad.flatten().cpu()

    def mc_values(prefixes: list[tuple[int, int]], n: int) -> torch.Tensor:
        """Mean reward.names[0] outcome of `n` continuations of each (row, t) prefix (prompt + the row's first t
        completion tokens), each within the row's token budget (Segment PO's Monte-Carlo values)."""
        prefix_rows = [ro.prompt_ids[i][ro.prompt_mask[i].bool()].tolist() + comp_rows[i][:t] for i, t in prefixes]
        budget = g.max_new_tokens - min(t for _, t in prefixes)
        sampling = SamplingConfig(budget, g.temperature, g.top_k, g.top_p, tuple(g.stop_strings))
        model.eval()
        mc = sample_groups(model, policy.tokenizer, prefix_rows, group_size=n, sampling=sampling,
                           eos_ids=policy.eos_ids, prefill_once=g.prefill_once)  # fmt: skip
        model.train(was_training)
        texts_mc, meta_mc, prompts_mc = [], [], []
        for r in range(mc.group_ids.numel()):
            i, t = prefixes[r // n]
            cont = mc.completion_ids[r][: int(mc.completion_mask[r].sum())].tolist()[: g.max_new_tokens - t]
            text, stopped = completion_text(policy.tokenizer, comp_rows[i][:t] + cont, eos_ids=policy.eos_ids)
            texts_mc.append(text)
            meta_mc.append({**group_rows[i], "terminated": stopped})
            prompts_mc.append(group_rows[i]["prompt"])
        scores = score_completions(reward_fns[:1], texts_mc, prompts_mc, meta_mc)[0][:, 0]
        return scores.view(len(prefixes), n).mean(-1)

    token_adv = None
    if hooks.shaper is not None:  # hook: reward shaping
        shaped = hooks.shaper(
            H.ShapingInput(
                rewards, total, outcome, mask.sum(-1), ~ro.truncated.cpu(), keys, mask, texts,
                [policy.tokenizer.convert_ids_to_tokens(r[:n]) for r, n in zip(comp_rows, lengths, strict=True)],
                [str(r["answer"]) for r in group_rows], step, g.max_new_tokens, sampling_logprobs, policy_gradient,
            )
        )  # fmt: skip
        total, token_adv = shaped.total.float().cpu(), shaped.token_adv
    bad = torch.isin(groups, torch.unique(groups[~torch.isfinite(total)]))  # (N,) rows of groups with a NaN reward
    skipped = int(torch.unique(groups[bad]).numel())
    if skipped:
        print(
            f"[flowrl] step {step}: {skipped} group(s) had a NaN / inf reward and were skipped "
            "(counted in metric skipped_groups).",
            file=sys.stderr,
        )
    total = torch.where(bad, 0.0, total)
    adv = variant.advantages(total, keys)  # (N,)
    if token_adv is not None:
        adv = adv[:, None] + token_adv.float().cpu() * mask  # (N, C)
    adv = torch.where(bad if adv.ndim == 1 else bad[:, None], 0.0, adv)
    if cfg.loss.mask_truncated:
        mask = truncation_mask(mask, ro.truncated.cpu())
    varies = nonzero_variance_mask(total, groups)  # (N,)
    if variant.drop_constant_groups:
        mask = mask * varies[:, None].float()
    mask = mask * (~bad)[:, None].float()
    weights = None
    if hooks.token_weights is not None or hooks.token_mask is not None:
        token_in = H.TokenInput(
            adv, ro.completion_ids.cpu(), mask, keys, step, sampling_logprobs, full_logprobs, outcome, mc_values
        )
        if hooks.token_weights is not None:  # hook: per-token weights (may reshape the advantages)
            adv, weights = hooks.token_weights(token_in)
        if hooks.token_mask is not None:  # hook: token down-sampling
            mask = hooks.token_mask(token_in._replace(adv=adv)).float()
    pos_weights = None
    if hooks.whole_loss is not None and hooks.whole_loss.pos_weights is not None:
        pos_weights = hooks.whole_loss.pos_weights(mask.sum(-1), outcome, groups, g.max_new_tokens)
    if hooks.sizes is not None:
        hooks.sizes.report(indices, outcome, groups)
    forward = mask.sum(-1) > 0
    if hooks.whole_loss is not None:  # a discriminative loss only sees groups with both outcomes
        forward &= nonzero_variance_mask(outcome, groups)
    elif cfg.train.skip_zero_advantage and not regularized(cfg):
        per_token = adv if adv.ndim == 2 else adv[:, None]
        forward &= ((per_token * mask) != 0).any(-1)
    return StepData(
        ro, rewards, total, adv, mask, torch.nonzero(forward).flatten(), skipped, outcome, weights, pos_weights,
        guided, hinted_old,
    )  # fmt: skip


def _trimmed(data: StepData, rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Rows of the step with all-padding columns cut: prompt ids/mask, completion ids/mask(attention), loss mask."""
    ro = data.rollout
    p_ids, p_mask = ro.prompt_ids[rows], ro.prompt_mask[rows]  # (M, P)
    c_ids, c_mask, loss_mask = ro.completion_ids[rows], ro.completion_mask[rows], data.mask[rows]  # (M, C)
    first = int((p_mask.sum(0) > 0).nonzero()[0])
    last = int((c_mask.sum(0) > 0).nonzero()[-1]) + 1 if c_mask.any() else 1
    return p_ids[:, first:], p_mask[:, first:], c_ids[:, :last], c_mask[:, :last], loss_mask[:, :last]


def micro_batches(rows: torch.Tensor, size: int) -> list[torch.Tensor]:
    """Consecutive chunks of at most `size` row indices."""
    return [rows[s : s + size] for s in range(0, rows.numel(), size)]


def group_micro_batches(rows: torch.Tensor, groups: torch.Tensor, size: int) -> list[torch.Tensor]:
    """Chunks of at most `size` row indices that never split a group (a whole-loss plugin compares a group's rows)."""
    out, current = [], []
    for g in torch.unique_consecutive(groups[rows]).tolist():
        members = rows[groups[rows] == g].tolist()
        if current and len(current) + len(members) > size:
            out.append(torch.tensor(current))
            current = []
        current += members
    if current:
        out.append(torch.tensor(current))
    return out


def update(
    cfg: TextTrainConfig,
    policy: TextPolicy,
    variant: Variant,
    data: StepData,
    optimizer: torch.optim.Optimizer,
    accelerator,
    *,
    hooks: TrainerHooks,
    teacher=None,
) -> dict[str, float]:
    """Inner epochs over the step's rollout: micro-batch forward / backward through the core (or the whole-loss hook),
    gradient sum over processes, clip, AdamW. Returns metrics averaged over the trained tokens."""
    world = accelerator.num_processes
    model, params = policy.model, trainable_parameters(policy)
    groups = data.rollout.group_ids.cpu()
    if hooks.whole_loss is not None:
        mbs = group_micro_batches(data.train_rows, groups, cfg.train.micro_batch_size)
    else:
        mbs = micro_batches(data.train_rows, cfg.train.micro_batch_size)
    counts = normalizer(data.mask, num_micro_batches=max(len(mbs), 1))
    num_tokens, num_seqs = (
        _all_reduce(counts.num_tokens.clone(), world),
        _all_reduce(counts.num_sequences.clone(), world),
    )
    norm = counts._replace(num_tokens=num_tokens, num_sequences=num_seqs)
    temp, chunk = cfg.generation.temperature, cfg.train.logprob_chunk
    reg = H.REGULARIZERS[cfg.hooks.regularizer] if regularized(cfg) and hooks.whole_loss is None else None
    old, ref, teach = {}, {}, {}
    with torch.no_grad():
        for i, mb in enumerate(mbs):
            args = _trimmed(data, mb)[:4]
            if cfg.train.inner_epochs > 1:
                old[i] = completion_logprobs(model, *args, temperature=temp, chunk_size=chunk).logp
            if reg is not None and cfg.hooks.regularizer == "reference_kl":
                ref[i] = reference_logprobs(policy, *args, temperature=temp, chunk_size=chunk).logp
            if reg is not None and cfg.hooks.regularizer == "teacher_kl":
                teach[i] = completion_logprobs(teacher, *args, temperature=temp, chunk_size=chunk).logp
    sums: dict[str, float] = {}
    for _ in range(cfg.train.inner_epochs):
        optimizer.zero_grad(set_to_none=False)
        for i, mb in enumerate(mbs):
            p_ids, p_mask, c_ids, c_mask, loss_mask = _trimmed(data, mb)
            lp = completion_logprobs(model, p_ids, p_mask, c_ids, c_mask, temperature=temp, chunk_size=chunk)
            dev, width = lp.logp.device, c_ids.shape[1]
            tok_mask = loss_mask.to(dev)
            if cfg.loss.top_entropy_quantile < 1.0:
                tok_mask = top_entropy_mask(lp.entropy, tok_mask, quantile=cfg.loss.top_entropy_quantile)
            old_logp = old[i] if i in old else lp.logp.detach()
            if data.old_logp is not None:  # Guide: the guided rows' denominator is the hinted sampler
                hinted = data.old_logp[mb][:, :width].to(dev)
                old_logp = guided_old_logp(old_logp, hinted, data.guided[mb].to(dev))
            adv = data.adv[mb]
            adv = (adv[:, :width] if adv.ndim == 2 else adv).to(dev)
            outcome = data.outcome[mb].to(dev)
            if hooks.whole_loss is not None:  # hook: a loss that replaces advantages + policy_loss
                pos_w = None if data.pos_weights is None else data.pos_weights[mb].to(dev)
                whole_in = H.WholeLossInput(
                    lp.logp, old_logp, tok_mask, outcome, groups[mb].to(dev), pos_w, cfg.train.prompts_per_step
                )
                loss = hooks.whole_loss.loss(whole_in)
                metrics = {"policy_loss": loss.detach()}
            else:
                kl = None
                if reg is not None:  # hook: the regulariser term (PolicyBatch.kl)
                    reg_in = H.RegularizerInput(lp.logp, old_logp, ref.get(i), teach.get(i), adv, tok_mask, outcome)
                    kl = reg(reg_in, estimator=cfg.loss.kl_estimator)
                weights = None if data.weights is None else data.weights[mb][:, :width].to(dev)
                batch = PolicyBatch(lp.logp, old_logp, adv, tok_mask, kl=kl, weights=weights)
                loss, metrics = policy_loss(variant.objective, batch, norm=norm)
            accelerator.backward(loss)
            n = float(tok_mask.sum())
            metrics["entropy"] = (lp.entropy * c_mask).sum() / c_mask.sum().clamp(min=1)
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + float(v) * n
            sums["_tokens"] = sums.get("_tokens", 0.0) + n
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            _all_reduce(p.grad, world)
        if cfg.optim.grad_clip > 0:
            sums["grad_norm"] = sums.get("grad_norm", 0.0) + float(
                torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)
            )
        optimizer.step()
    tokens = sums.pop("_tokens", 0.0)
    out = {k: v / tokens for k, v in sums.items() if k != "grad_norm" and tokens > 0}
    if "grad_norm" in sums:
        out["grad_norm"] = sums["grad_norm"] / cfg.train.inner_epochs
    out["num_trained_tokens"] = tokens
    return out


def _all_reduce(t: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
    return t


def rollout_metrics(cfg: TextTrainConfig, data: StepData, reward_names: list[str]) -> dict[str, float]:
    """TRL-named metrics of the step's samples: reward, reward_std, rewards/<fn>/mean|std, frac_reward_zero_std,
    completions/{mean,min,max}_length, completions/mean_terminated_length, completions/clipped_ratio."""
    ro, groups = data.rollout, data.rollout.group_ids.cpu()
    stats = group_stats(data.total, groups)
    lengths = ro.completion_mask.sum(-1).float().cpu()
    terminated = ~ro.truncated.cpu()
    out = {
        "reward": float(data.total.mean()),
        "reward_std": float(stats.std.mean()),
        "frac_reward_zero_std": float((stats.std == 0).float().mean()),
        "completions/mean_length": float(lengths.mean()),
        "completions/min_length": float(lengths.min()),
        "completions/max_length": float(lengths.max()),
        "completions/clipped_ratio": float(ro.truncated.float().mean()),
        "completions/mean_terminated_length": float(lengths[terminated].mean()) if terminated.any() else math.nan,
        "skipped_groups": float(data.skipped_groups),
        "num_tokens": float(lengths.sum()),
        "trained_groups_ratio": float(data.train_rows.numel() / max(len(groups), 1)),
        "guided_rows": float(data.guided.sum()),
    }
    for k, name in enumerate(reward_names):
        col = data.rewards[:, k]
        out[f"rewards/{name}/mean"] = float(col.nanmean())
        out[f"rewards/{name}/std"] = float(col[~col.isnan()].std()) if (~col.isnan()).sum() > 1 else math.nan
    return out


# ----------------------------------------------------------------------------------------------------- the loop


def _model_state(policy: TextPolicy) -> dict[str, torch.Tensor]:
    if policy.lora:
        from peft.utils import get_peft_model_state_dict

        return {k: v.detach().clone() for k, v in get_peft_model_state_dict(policy.model).items()}
    return {k: v.detach().clone() for k, v in policy.model.state_dict().items()}


def _load_model_state(policy: TextPolicy, state: dict[str, torch.Tensor]) -> None:
    if policy.lora:
        from peft.utils import set_peft_model_state_dict

        set_peft_model_state_dict(policy.model, state)
    else:
        policy.model.load_state_dict(state)


def train(cfg: TextTrainConfig, *, resume: Path | None = None) -> TextTrainResult:
    """Run (or resume) a text GRPO run; returns its folder and base / final held-out accuracy."""
    from accelerate import Accelerator

    from flowrl.runtime.checkpoint import (
        capture_rng_state,
        latest_checkpoint,
        load_checkpoint,
        restore_rng_state,
        save_checkpoint,
    )
    from flowrl.runtime.metrics import MetricsLogger, read_metrics
    from flowrl.runtime.plots import plot_curves
    from flowrl.runtime.progress import progress
    from flowrl.runtime.run_dir import create_run_dir, write_config

    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    rank, world = accelerator.process_index, accelerator.num_processes
    if cfg.train.prompts_per_step % world:
        raise ConfigError(
            f"train.prompts_per_step ({cfg.train.prompts_per_step}) must be divisible by the number of processes "
            f"({world})."
        )
    main_process = accelerator.is_main_process
    t_start = time.perf_counter()
    variant = build_variant(cfg)
    hooks = build_hooks(cfg)
    reference_kl = regularized(cfg) and cfg.hooks.regularizer == "reference_kl"
    policy = load_policy(
        resolve_path(cfg.model.path, what="model folder"),
        dtype=cfg.model.dtype,
        lora_rank=cfg.model.lora_rank,
        lora_alpha=cfg.model.lora_alpha,
        keep_reference=reference_kl and not cfg.hooks.reference_soup,
        device=accelerator.device,
    )
    check_context(cfg, policy)
    if cfg.hooks.reference_soup:  # hook: SALSA's reference = a weight soup of model folders
        if policy.lora or not reference_kl:
            raise ConfigError(
                "hooks.reference_soup replaces the frozen reference copy of full fine-tuning: it needs "
                "model.lora_rank=0, hooks.regularizer=reference_kl and loss.kl_beta > 0 (or hooks.kl_beta_end > 0)."
            )
        paths = [resolve_path(p, what="soup model folder") for p in cfg.hooks.reference_soup]
        policy = policy._replace(reference=soup_model(policy.model, paths))
    teacher = None
    if cfg.hooks.regularizer == "teacher_kl":  # hook: KDRL's teacher
        teacher = load_teacher(resolve_path(cfg.hooks.teacher_path, what="teacher model folder"), policy)
    schedule = None
    if cfg.hooks.kl_ramp_steps > 0:  # hook: regulariser coefficient schedule (GRPO-D, KDRL)
        schedule = LinearSchedule(cfg.loss.kl_beta, cfg.hooks.kl_beta_end, cfg.hooks.kl_ramp_steps)
    rows = load_jsonl(resolve_path(cfg.task.train_file, what="training task file"), what="training task file")
    prompt_ids = encode_prompts(
        policy.tokenizer,
        [str(r["prompt"]) for r in rows],
        max_prompt_length=cfg.generation.max_prompt_length,
        system=cfg.task.system,
    )
    test_rows = (
        load_jsonl(resolve_path(cfg.task.test_file, what="held-out task file"), what="held-out task file")[
            : cfg.task.test_size
        ]
        if cfg.task.test_file
        else []
    )
    reward_fns = [load_text_reward(name) for name in cfg.reward.names]
    reward_names = [fn.name for fn in reward_fns]
    params = trainable_parameters(policy)
    optimizer = torch.optim.AdamW(  # fused: one kernel over all tensors (5x less optimizer time on CPU than foreach)
        params, lr=cfg.optim.lr, betas=cfg.optim.betas, weight_decay=cfg.optim.weight_decay, fused=True
    )

    def run_eval() -> float | None:
        if not test_rows:
            return None
        return greedy_accuracy(
            policy.model,
            policy.tokenizer,
            [str(r["prompt"]) for r in test_rows],
            [str(r["answer"]) for r in test_rows],
            max_new_tokens=cfg.eval.max_new_tokens,
            max_prompt_length=cfg.generation.max_prompt_length,
            system=cfg.task.system,
        )

    start_step, base, train_seconds, last_eval_seconds = 0, None, 0.0, 0.0
    if resume is not None:
        ckpt_path = latest_checkpoint(resume)
        if ckpt_path is None:
            raise FileNotFoundError(f"No checkpoint in {resume}/checkpoints to resume from.")
        ckpt = load_checkpoint(ckpt_path)
        _load_model_state(policy, ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt["rng"] is not None:
            restore_rng_state(ckpt["rng"])
        trainer = ckpt["trainer"]
        start_step, base = int(trainer["step"]), trainer["base_accuracy"]
        train_seconds, last_eval_seconds = float(trainer["train_seconds"]), float(trainer["last_eval_seconds"])
        run_dir = Path(resume)
    else:
        run_dir = create_run_dir(cfg.run.root, cfg.run.name or None) if main_process else Path(cfg.run.root)
    if main_process:
        write_config(run_dir, dump_yaml(cfg))
    resume_step = start_step + 1 if resume is not None else None
    logger = MetricsLogger(run_dir, tensorboard=cfg.run.tensorboard, resume_step=resume_step) if main_process else None

    if resume is None and main_process:
        base = run_eval()
        if base is not None:
            logger.log(0, {"eval/accuracy": base})
            print(
                f"[flowrl] base model: held-out accuracy {100 * base:.1f}% ({len(test_rows)} problems)",
                file=sys.stderr,
            )

    def checkpoint(next_step: int) -> None:
        if not main_process:
            return
        trainer = {
            "step": next_step,
            "base_accuracy": base,
            "train_seconds": train_seconds,
            "last_eval_seconds": last_eval_seconds,
        }
        save_checkpoint(
            run_dir,
            next_step,
            {
                "model": _model_state(policy),
                "optimizer": optimizer.state_dict(),
                "rng": capture_rng_state(),
                "trainer": trainer,
                "config": dump_yaml(cfg),
            },
            keep_last=cfg.run.keep_last,
        )

    final, step, window = None, start_step, {}
    limit = cfg.train.time_limit_minutes
    bar = progress(cfg.train.steps - start_step, desc="flowrl train-text", disable=not main_process)
    try:
        for step in range(start_step, cfg.train.steps):
            t0 = time.perf_counter()
            indices = step_rows(len(rows), cfg.train.prompts_per_step, seed=cfg.train.seed, step=step)[rank::world]
            step_variant = variant if schedule is None else with_beta(variant, schedule(step))
            data = collect(
                cfg, policy, step_variant, reward_fns, rows, prompt_ids, indices, step=step, rank=rank, hooks=hooks
            )
            t1 = time.perf_counter()
            metrics = rollout_metrics(cfg, data, reward_names)
            metrics.update(
                update(cfg, policy, step_variant, data, optimizer, accelerator, hooks=hooks, teacher=teacher)
            )
            metrics["kl_beta"] = step_variant.objective.beta
            t2 = time.perf_counter()
            metrics.update(time_generate=t1 - t0, time_train=t2 - t1, step_time=t2 - t0)
            train_seconds += t2 - t0
            done = step + 1
            for k, v in metrics.items():
                window.setdefault(k, []).append(v)
            evaluate_now = (
                cfg.eval.every_minutes > 0 and train_seconds - last_eval_seconds >= 60 * cfg.eval.every_minutes
            ) or (cfg.eval.every_steps > 0 and done % cfg.eval.every_steps == 0)
            out_of_time = limit > 0 and train_seconds / 60 >= limit
            last = done == cfg.train.steps or out_of_time
            if main_process:
                bar.set_postfix(reward=f"{metrics['reward']:.3f}")
                bar.update(1)
                if done % cfg.run.log_every == 0 or done % cfg.run.checkpoint_every == 0 or evaluate_now or last:
                    logged = {k: _nanmean(v) for k, v in window.items()}
                    logged["learning_rate"] = cfg.optim.lr
                    logged["train_minutes"] = train_seconds / 60
                    if evaluate_now or last:
                        final = run_eval()
                        last_eval_seconds = train_seconds
                        if final is not None:
                            logged["eval/accuracy"] = final
                    logged["wall_minutes"] = (time.perf_counter() - t_start) / 60
                    logged["process_cpu_time"] = time.process_time()  # CPU seconds of this process so far
                    logger.log(done, logged)
                    window = {}
            if done % cfg.run.checkpoint_every == 0 or last:
                checkpoint(done)
            if out_of_time:
                if main_process:
                    print(f"[flowrl] time limit of {limit} min reached after {done} steps.", file=sys.stderr)
                break
    finally:
        bar.close()
        if logger is not None:
            logger.close()
    steps_done = step + 1
    minutes = train_seconds / 60
    if main_process:
        out = run_dir / "final"
        policy.model.save_pretrained(out)  # full model, or the LoRA adapter (peft layout)
        policy.tokenizer.save_pretrained(out)
        plot_curves(
            read_metrics(run_dir / "metrics.jsonl"),
            ["reward", "eval/accuracy", "entropy", "completions/mean_length", "kl", "clip_ratio/region_mean"],
            run_dir / "curves.png",
            title=f"{cfg.loss.variant} on {Path(cfg.task.train_file).name}",
        )
        if base is not None and final is not None:
            print(
                f"flowrl train-text: held-out accuracy base {100 * base:.1f}% -> final {100 * final:.1f}% "
                f"({100 * (final - base):+.1f} points, {len(test_rows)} problems) after {steps_done} steps, "
                f"{minutes:.1f} min of training, {(time.perf_counter() - t_start) / 60:.1f} min wall; run folder "
                f"{run_dir}"
            )
        else:
            print(f"flowrl train-text: {steps_done} steps, {minutes:.1f} min of training; run folder {run_dir}")
    return TextTrainResult(run_dir, base, final, steps_done, minutes)


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


# ----------------------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """`flowrl train-text [--preset NAME] [--resume RUN] [--show-config] [key.path=value ...]` -> exit code."""
    parser = argparse.ArgumentParser(
        prog="flowrl train-text",
        description="GRPO-train a causal language model. Defaults: the shipped arithmetic LM (assets/arith_lm), "
        f"preset {DEFAULT_PRESET}, on CPU for 14 minutes. Override any field with key.path=value.",
        epilog="Examples: flowrl train-text --preset grpo train.time_limit_minutes=2 | flowrl train-text "
        "model.path=/my/model task.train_file=t.jsonl task.test_file=h.jsonl | flowrl train-text --resume runs/<name>",
    )
    parser.add_argument(
        "--preset", help=f"preset name ({', '.join(PRESETS)}; LLM variants: {', '.join(LLM_PRESETS)}) or a YAML file"
    )
    parser.add_argument("--resume", type=Path, help="continue the run in this folder from its last checkpoint")
    parser.add_argument("--show-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("overrides", nargs="*", help="key.path=value overrides (e.g. optim.lr=2e-5)")
    args = parser.parse_args(argv)
    try:
        if args.resume is not None:
            saved = args.resume / "config.yaml"
            if not saved.is_file():
                raise ConfigError(f"{args.resume} has no config.yaml: not a flowrl run folder.")
            cfg = load_yaml_text(TextTrainConfig, saved.read_text())
            if args.overrides:
                cfg = from_dict(TextTrainConfig, merge(load_yaml_file(saved), parse_overrides(args.overrides)))
        else:
            cfg = load_config(preset=args.preset, overrides=args.overrides)
        if args.show_config:
            print(dump_yaml(cfg), end="")
            return 0
        if cfg.train.threads > 0:
            torch.set_num_threads(cfg.train.threads)
        train(cfg, resume=args.resume)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        print(f"flowrl train-text: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
