"""The LLM GRPO variants that `flowrl train-text` cannot select yet (docs/papers_llm.md: Segment Policy
Optimization, Scaf-GRPO, Guide, GVM-RAFT) train the tiny arithmetic LM for 2 steps in a small loop over the trainer's
text pieces (sample_groups, completion_logprobs, policy_loss), each rule applied where the trainer would. Every
selectable variant trains through the trainer in tests/text/test_hooks_train.py.

Run: pytest tests/text/test_llm_variants_train.py -q
"""

import pytest
import torch

from flowrl.grpo import PolicyBatch, normalizer, policy_loss
from flowrl.grpo.advantages import group_advantages
from flowrl.grpo.budget import gvm_allocation
from flowrl.grpo.discriminative import mean_logp_score
from flowrl.grpo.hints import failed_groups, guided_old_logp, replace_failed
from flowrl.grpo.reduce import Normalizer
from flowrl.grpo.schedules import HintPlanner
from flowrl.grpo.segments import cutpoint_segments, probability_mask, segment_advantages
from flowrl.grpo.variants import grpo
from flowrl.text.data import load_jsonl
from flowrl.text.logprobs import completion_logprobs
from flowrl.text.policy import load_policy
from flowrl.text.prompts import encode_prompts, left_pad
from flowrl.text.rollout import SamplingConfig, sample_groups

# ------------------------------------------------------------------------------------------------------------------
# A 2-step loop over the trainer's text pieces that applies each rule where the trainer would.

GROUP, PROMPTS, NEW_TOKENS = 6, 3, 8


class Step:
    """One sampled step: the rollout, its log-probs (with grad) and the toy verifier's outcome."""

    def __init__(self, policy, prompt_ids, step):
        torch.manual_seed(100 + step)
        self.step = step
        model = policy.model
        model.eval()
        self.ro = sample_groups(
            model, policy.tokenizer, prompt_ids, group_size=GROUP, sampling=SamplingConfig(NEW_TOKENS, 1.0),
            eos_ids=policy.eos_ids,
        )  # fmt: skip
        model.train()
        self.mask = self.ro.completion_mask.float()  # (N, C)
        self.lengths = self.mask.sum(-1)  # (N,)
        self.correct = (self.lengths % 2 == 0).float()  # toy verifier: even-length completions are "right"
        self.gids = self.ro.group_ids

    def logprobs(self, model):
        ro = self.ro
        return completion_logprobs(model, ro.prompt_ids, ro.prompt_mask, ro.completion_ids, ro.completion_mask)


def _grpo_batch(s, lp, rewards, **fields):
    adv = group_advantages(rewards, s.gids)
    return PolicyBatch(lp.logp, lp.logp.detach(), adv, fields.pop("mask", s.mask), **fields)


def _loss(objective, batch):
    return policy_loss(objective, batch, norm=normalizer(batch.mask))[0]


def _segment_po(s, lp, ctx, *, continuations=2):
    """SPO-chain with Monte-Carlo values: each segment start is continued `continuations` times by the policy and
    scored by the toy verifier (total length even); the last value is the completion's own outcome."""
    model, ro = ctx["model"], s.ro
    seg = cutpoint_segments(lp.logp.detach(), s.mask, prob_threshold=0.5, interval=2)
    values = torch.zeros(s.mask.shape[0], int(seg.count.max()) + 1)
    model.eval()
    for i in range(s.mask.shape[0]):
        prompt = ro.prompt_ids[i][ro.prompt_mask[i].bool()].tolist()
        starts = torch.nonzero(seg.starts[i]).flatten().tolist()
        for k, t in enumerate(starts):
            prefix = prompt + ro.completion_ids[i, :t].tolist()
            cont = sample_groups(
                model, ctx["tokenizer"], [prefix], group_size=continuations,
                sampling=SamplingConfig(NEW_TOKENS - t, 1.0), eos_ids=ctx["eos_ids"],
            )  # fmt: skip
            values[i, k] = ((t + cont.completion_mask.sum(-1)) % 2 == 0).float().mean()
        values[i, len(starts)] = s.correct[i]
    model.train()
    adv = segment_advantages(values, seg)  # (N, C)
    keep = probability_mask(seg, s.mask)
    return _loss(grpo().objective, PolicyBatch(lp.logp, lp.logp.detach(), adv, keep))


def _first_char_verifier(completion_ids, answers, tokenizer):
    """Stand-in verifier for the hint rules: the completion starts with the answer's first character."""
    first = torch.tensor([tokenizer.convert_tokens_to_ids(a[0]) for a in answers])
    return (completion_ids[:, 0] == first).float()


def _hinted(s, lp, ctx, *, guide):
    """Scaf-GRPO (guide=False: the hint stays in the guided sample's prompt) or Guide (guide=True: trained as if the
    hint were absent, ratio denominator from the hinted sampling policy). Hints: the answer's first 1 / 2 / all
    characters (Knowledge / Planning / Solution tiers)."""
    model, tok, ro = ctx["model"], ctx["tokenizer"], s.ro
    answers = [ctx["answers"][g] for g in s.gids.tolist()]
    correct = _first_char_verifier(ro.completion_ids, answers, tok)
    planner = ctx.setdefault("planner", HintPlanner(exemption_steps=0))
    cuts = {"knowledge": 1, "planning": 2, "solution": None}
    found = []  # (group, hinted prompt ids, one guided rollout)
    model.eval()
    for g in torch.unique(s.gids[failed_groups(correct, s.gids)]).tolist():
        for tier in planner.tiers_to_try(g, step=s.step):
            hint = tok(ctx["answers"][g][: cuts[tier]], add_special_tokens=False)["input_ids"]
            hinted = ctx["prompt_ids"][g] + hint
            g_ro = sample_groups(model, tok, [hinted], group_size=4, sampling=SamplingConfig(NEW_TOKENS, 1.0),
                                 eos_ids=ctx["eos_ids"])  # fmt: skip
            ok = _first_char_verifier(g_ro.completion_ids, [ctx["answers"][g]] * 4, tok)
            if ok.any():
                planner.report(g, tier)
                j = int(torch.nonzero(ok)[0])
                found.append((g, hinted, g_ro.completion_ids[j : j + 1], g_ro.completion_mask[j : j + 1]))
                break
    model.train()
    ctx["guided_found"] = ctx.get("guided_found", 0) + len(found)
    swap = replace_failed(correct, s.gids, torch.ones(len(found)), torch.tensor([f[0] for f in found]))  # (N,)
    mixed = torch.where(swap >= 0, 1.0, correct)  # the mixed group's rewards
    adv = group_advantages(mixed, s.gids)
    keep = s.mask * (swap < 0).float()[:, None]  # replaced on-policy rows leave the loss
    parts = [PolicyBatch(lp.logp, lp.logp.detach(), adv, keep)]
    for row in torch.nonzero(swap >= 0).flatten().tolist():
        g, hinted, c_ids, c_mask = found[int(swap[row])]
        hinted_t = torch.tensor([hinted])
        plain = torch.tensor([ctx["prompt_ids"][g]])
        on_hinted = completion_logprobs(model, hinted_t, torch.ones_like(hinted_t), c_ids, c_mask).logp
        if guide:  # numerator without the hint, denominator = the hinted sampling policy
            logp = completion_logprobs(model, plain, torch.ones_like(plain), c_ids, c_mask).logp
            old = guided_old_logp(logp.detach(), on_hinted.detach(), torch.tensor([True]))
        else:  # Scaf-GRPO: the hint stays in the prompt, on-policy
            logp, old = on_hinted, on_hinted.detach()
        parts.append(PolicyBatch(logp, old, adv[row : row + 1], c_mask.float()))
    tokens = sum(b.mask.sum() for b in parts)
    seqs = sum((b.mask.sum(-1) > 0).float().sum() for b in parts)
    norm = Normalizer(tokens, seqs)
    return sum(policy_loss(grpo().objective, b, norm=norm)[0] for b in parts)


RULES = {
    "scaf_grpo": lambda s, lp, ctx: _hinted(s, lp, ctx, guide=False),
    "guide": lambda s, lp, ctx: _hinted(s, lp, ctx, guide=True),
    "segment_po": _segment_po,
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_rule_trains_the_tiny_lm_in_a_two_step_loop(tiny_folder, rule):
    torch.manual_seed(0)
    policy = load_policy(tiny_folder)
    rows = load_jsonl(tiny_folder / "train.jsonl")[:PROMPTS]
    prompt_ids = encode_prompts(policy.tokenizer, [r["prompt"] for r in rows], max_prompt_length=48)
    params = [p for p in policy.model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=1e-3)
    ctx = {
        "model": policy.model,
        "tokenizer": policy.tokenizer,
        "eos_ids": policy.eos_ids,
        "answers": [r["answer"] for r in rows],
        "prompt_ids": prompt_ids,
    }
    for step in range(2):
        s = Step(policy, prompt_ids, step)
        opt.zero_grad()
        loss = RULES[rule](s, s.logprobs(policy.model), ctx)
        loss.backward()
        opt.step()
        assert torch.isfinite(loss), rule
    assert any(not torch.equal(b, p) for b, p in zip(before, params, strict=True)), f"{rule}: nothing changed"
    if rule in ("scaf_grpo", "guide"):
        assert ctx["guided_found"] > 0, "no hint-guided success: the guided path was not exercised"


def _sample_allocated(policy, prompt_ids, counts):
    """Sample counts[i] completions of prompt i (0 = skipped) and pad them into one batch: prompts left-padded, the
    completions right-padded to NEW_TOKENS. Returns (prompt ids, prompt mask, completion ids, completion mask,
    group ids)."""
    pad = policy.tokenizer.pad_token_id
    rows, groups = [], []
    policy.model.eval()
    for i, n in enumerate(counts.tolist()):
        if n == 0:
            continue
        ro = sample_groups(policy.model, policy.tokenizer, [prompt_ids[i]], group_size=n,
                           sampling=SamplingConfig(NEW_TOKENS, 1.0), eos_ids=policy.eos_ids)  # fmt: skip
        for c, m in zip(ro.completion_ids, ro.completion_mask, strict=True):
            rows.append((prompt_ids[i], c, m))
            groups.append(i)
    policy.model.train()
    p_ids, p_mask = left_pad([r[0] for r in rows], pad_id=pad)  # (N, P)
    c_ids = torch.full((len(rows), NEW_TOKENS), pad, dtype=torch.long)
    c_mask = torch.zeros(len(rows), NEW_TOKENS, dtype=torch.long)
    for k, (_, c, m) in enumerate(rows):
        c_ids[k, : c.numel()], c_mask[k, : m.numel()] = c, m
    return p_ids, p_mask, c_ids, c_mask, torch.tensor(groups)


def test_gvm_planner_trains_the_tiny_lm(tiny_folder):
    torch.manual_seed(0)
    policy = load_policy(tiny_folder)
    rows = load_jsonl(tiny_folder / "train.jsonl")[:PROMPTS]
    prompt_ids = encode_prompts(policy.tokenizer, [r["prompt"] for r in rows], max_prompt_length=48)
    params = [p for p in policy.model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=1e-3)
    budget = PROMPTS * GROUP
    head = policy.model.get_output_embeddings().weight
    for _ in range(2):
        # GVM: pre-sample 4 per prompt, acceptance rate and gradient norm of the accepted samples' likelihood
        p_ids, p_mask, c_ids, c_mask, gids = _sample_allocated(policy, prompt_ids, torch.full((PROMPTS,), 4))
        lp = completion_logprobs(policy.model, p_ids, p_mask, c_ids, c_mask).logp
        ok = (c_mask.sum(-1) % 2 == 0).float()
        rates, norms = torch.zeros(PROMPTS), torch.zeros(PROMPTS)
        for i in range(PROMPTS):
            acc = (gids == i) & (ok > 0)
            rates[i] = ok[gids == i].mean()
            if acc.any():
                (g,) = torch.autograd.grad(mean_logp_score(lp[acc], c_mask[acc].float()).mean(), head,
                                           retain_graph=True)  # fmt: skip
                norms[i] = g.norm()
        counts = gvm_allocation(rates, norms, budget=budget)
        if counts.sum() == 0:
            counts = torch.full((PROMPTS,), GROUP)
        assert int(counts.sum()) <= budget
        p_ids, p_mask, c_ids, c_mask, gids = _sample_allocated(policy, prompt_ids, counts)
        correct = (c_mask.sum(-1) % 2 == 0).float()
        opt.zero_grad()
        lp = completion_logprobs(policy.model, p_ids, p_mask, c_ids, c_mask)
        mask = c_mask.float()
        batch = PolicyBatch(lp.logp, lp.logp.detach(), group_advantages(correct, gids), mask)
        loss = _loss(grpo().objective, batch)
        loss.backward()
        opt.step()
        assert torch.isfinite(loss)
    assert any(not torch.equal(b, p) for b, p in zip(before, params, strict=True))
