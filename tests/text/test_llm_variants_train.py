"""The LLM GRPO variants train the tiny arithmetic LM for 2 steps.

* every `LLM_VARIANTS` entry through the text trainer, selected as ``loss.variant=flowrl.grpo.variants_llm:<name>``;
* the rules the trainer has no hook for yet (schedules, teacher KL, token masks / weights, reward shaping, whole-loss
  objectives, dynamic reward weights) in a 2-step loop over the same text pieces, applied where the trainer would.

Run: pytest tests/text/test_llm_variants_train.py -q
"""

import copy
import json
from pathlib import Path

import pytest
import torch

from flowrl.grpo import PolicyBatch, kl_k3, normalizer, policy_loss
from flowrl.grpo.advantages import group_advantages
from flowrl.grpo.advantages_llm import entropy_shaped_advantages
from flowrl.grpo.budget import gvm_allocation, knapsack_allocation
from flowrl.grpo.discriminative import disco_loss, drpo_positive_weights, kl_hinge, mean_logp_score
from flowrl.grpo.hints import failed_groups, guided_old_logp, replace_failed
from flowrl.grpo.reduce import Normalizer
from flowrl.grpo.regularizers import llds_penalty, masked_teacher_kl
from flowrl.grpo.reward_weights import gradient_influence
from flowrl.grpo.schedules import ExponentialBudget, HintPlanner, LinearSchedule
from flowrl.grpo.segments import cutpoint_segments, probability_mask, segment_advantages
from flowrl.grpo.selection import adv_entropy_token_mask
from flowrl.grpo.shaping import (
    budget_rewards,
    grpo_lambda_rewards,
    posterior_rewards,
    unlikeliness_rewards,
)
from flowrl.grpo.soup import weight_soup
from flowrl.grpo.trackers import DynamicRewardWeights
from flowrl.grpo.variants import grpo
from flowrl.grpo.variants_llm import LLM_VARIANTS, grpo_d, grpo_d_schedule, gtpo, kdrl, llds, with_beta
from flowrl.grpo.weights_llm import conflict_token_weights, group_kl_token_weights
from flowrl.text.data import load_jsonl
from flowrl.text.logprobs import completion_logprobs
from flowrl.text.policy import load_policy
from flowrl.text.prompts import encode_prompts, left_pad
from flowrl.text.rollout import SamplingConfig, position_ids, sample_groups
from flowrl.text.train import load_config, train

# variants whose regulariser slot is exercised with the trainer's reference KL (k2, the KDRL estimator)
KL = {"grpo_d": ["loss.kl_beta=0.02"], "kdrl": ["loss.kl_beta=0.005", "loss.kl_estimator=k2"]}
# LLDS's term is 0 on-policy: two inner epochs make the likelihood of kept responses move
INNER = {"llds": ["train.inner_epochs=2"], "dcpo": ["train.inner_epochs=2"]}
# advantages that are non-zero on constant-reward groups: the trainer must forward them (it skips them by default)
FORWARD_CONSTANT = {name: ["train.skip_zero_variance=false"] for name in ("ngrpo", "dcpo", "spo", "riskpo")}


def _cfg(folder: Path, tmp: Path, name: str):
    overrides = [
        f"model.path={folder}",
        f"task.train_file={folder / 'train.jsonl'}",
        f"task.test_file={folder / 'test.jsonl'}",
        f"run.root={tmp / 'runs'}",
        "run.tensorboard=false",
        "run.log_every=1",
        "train.steps=2",
        "train.micro_batch_size=12",
        "optim.lr=1e-3",
        "eval.every_minutes=0",
        "reward.names=[text_rewards_toy:length]",
        f"loss.variant=flowrl.grpo.variants_llm:{name}",
        *KL.get(name, []),
        *INNER.get(name, []),
        *FORWARD_CONSTANT.get(name, []),
    ]
    return load_config(preset="grpo", overrides=overrides)


def _weights(folder):
    from transformers import AutoModelForCausalLM

    return {k: v.clone() for k, v in AutoModelForCausalLM.from_pretrained(folder).state_dict().items()}


@pytest.mark.parametrize("name", sorted(LLM_VARIANTS))
def test_llm_variant_trains_through_the_text_trainer(tiny_folder, tmp_path, name):
    before = _weights(tiny_folder)
    result = train(_cfg(tiny_folder, tmp_path, name))
    after = _weights(result.run_dir / "final")
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed, f"{name}: no parameter changed in 2 steps"
    records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in records if "reward" in r]
    assert len(trained) == 2 and all(torch.isfinite(torch.tensor(r["policy_loss"])) for r in trained)


# ------------------------------------------------------------------------------------------------------------------
# Rules the trainer has no hook for yet (docs/papers_llm.md lists the hooks): a 2-step loop over the same text pieces
# (sample_groups, completion_logprobs, policy_loss) that applies each rule where the trainer would.

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


def _grpo_d(s, lp, ctx):
    sched = grpo_d_schedule(total_steps=2, beta_max=0.04)
    ref = s.logprobs(ctx["teacher"]).logp.detach()  # a frozen second model plays the reference
    return _loss(
        with_beta(grpo_d(), sched(s.step + 1)).objective, _grpo_batch(s, lp, s.correct, kl=kl_k3(lp.logp, ref))
    )


def _kdrl(s, lp, ctx):
    with torch.no_grad():
        teacher_logp = s.logprobs(ctx["teacher"]).logp  # the tiny teacher LM built in the test
    beta = LinearSchedule(5e-3, 1e-3, 2)(s.step)
    kl = masked_teacher_kl(lp.logp, teacher_logp, s.correct)
    return _loss(kdrl(beta=beta).objective, _grpo_batch(s, lp, s.correct, kl=kl))


def _d3s(s, lp, ctx):
    adv = group_advantages(s.correct, s.gids)
    keep = adv_entropy_token_mask(adv, lp.entropy, s.mask, keep_ratio=LinearSchedule(0.5, 1.0, 2)(s.step))
    return _loss(grpo().objective, PolicyBatch(lp.logp, lp.logp.detach(), adv, keep))


def _gtpo(s, lp, ctx):
    adv = group_advantages(s.correct, s.gids)
    seq_h = (lp.entropy * s.mask).sum(-1) / s.lengths.clamp(min=1)
    adv = entropy_shaped_advantages(adv, seq_h, threshold=10.0)  # random model: entropy ~ log V, keep all
    w = conflict_token_weights(s.ro.completion_ids, s.mask, adv, s.gids)
    return _loss(gtpo().objective, PolicyBatch(lp.logp, lp.logp.detach(), adv, s.mask, weights=w))


def _grpo_lambda(s, lp, ctx):
    return _loss(grpo().objective, _grpo_batch(s, lp, grpo_lambda_rewards(s.correct, s.lengths, s.gids)))


def _unlikely(s, lp, ctx):
    seq_logp = mean_logp_score(lp.logp.detach(), s.mask)
    return _loss(grpo().objective, _grpo_batch(s, lp, unlikeliness_rewards(s.correct, seq_logp, s.gids)))


def _tlts(s, lp, ctx):
    budget = ExponentialBudget(initial=NEW_TOKENS, gamma=0.5, every=1)(s.step)
    return _loss(grpo().objective, _grpo_batch(s, lp, budget_rewards(s.correct, s.lengths, budget=budget)))


def _posterior(s, lp, ctx):
    thinking = ctx["scorer"](s.ro.completion_ids, s.mask)  # pluggable process scorer: a rule-based stand-in
    rewards = posterior_rewards(torch.zeros_like(s.correct), s.correct, thinking)
    return _loss(grpo().objective, _grpo_batch(s, lp, rewards))


def _disco(s, lp, ctx, *, drpo=False):
    w = drpo_positive_weights(s.lengths, s.correct, s.gids, max_len=NEW_TOKENS) if drpo else None
    loss = disco_loss(mean_logp_score(lp.logp, s.mask), s.correct, s.gids, tau=10.0, num_questions=PROMPTS,
                      pos_weights=w)  # fmt: skip
    return loss + kl_hinge(kl_k3(lp.logp.detach(), lp.logp), s.mask)


def _tw_grpo(s, lp, ctx):
    ro, model = s.ro, ctx["model"]
    with torch.no_grad():
        ids = torch.cat([ro.prompt_ids, ro.completion_ids], 1)
        att = torch.cat([ro.prompt_mask, ro.completion_mask], 1)
        logits = model(input_ids=ids, attention_mask=att, position_ids=position_ids(att)).logits.float()
        P, C = ro.prompt_ids.shape[1], ro.completion_ids.shape[1]
        full = torch.log_softmax(logits[:, P - 1 : P + C - 1], -1)  # (N, C, V)
    w = group_kl_token_weights(full, s.mask, s.gids)
    return _loss(grpo().objective, _grpo_batch(s, lp, s.correct, weights=w))


def _dynamic_weights(s, lp, ctx):
    objectives = torch.stack([s.correct, 1 - s.lengths / NEW_TOKENS], 1)  # (N, 2): accuracy, conciseness
    head = ctx["model"].get_output_embeddings().weight
    grads = []
    for k in range(2):
        loss_k = _loss(grpo().objective, _grpo_batch(s, lp, objectives[:, k]))
        (g,) = torch.autograd.grad(loss_k, head, retain_graph=True)
        grads.append(g.flatten())
    weights = ctx.setdefault("weights", DynamicRewardWeights(2, lr=1e3)).update(torch.stack(grads))
    assert torch.isfinite(gradient_influence(torch.stack(grads))).all()
    return _loss(grpo().objective, _grpo_batch(s, lp, objectives @ weights))


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


def _salsa(s, lp, ctx):
    """SALSA: the KL reference is the soup of two SFT models (here the initial policy and the teacher)."""
    if "soup" not in ctx:
        soup = copy.deepcopy(ctx["teacher"])
        soup.load_state_dict(weight_soup([ctx["initial"], ctx["teacher"].state_dict()]))
        ctx["soup"] = soup.eval().requires_grad_(False)
    with torch.no_grad():
        ref = s.logprobs(ctx["soup"]).logp
    return _loss(grpo(beta=0.04).objective, _grpo_batch(s, lp, s.correct, kl=kl_k3(lp.logp, ref)))


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
    "salsa": _salsa,
    "grpo_d": _grpo_d,
    "kdrl": _kdrl,
    "d3s_token": _d3s,
    "gtpo_weights": _gtpo,
    "grpo_lambda": _grpo_lambda,
    "rewarding_unlikely": _unlikely,
    "train_long_think_short": _tlts,
    "posterior_grpo": _posterior,
    "disco": _disco,
    "drpo": lambda s, lp, ctx: _disco(s, lp, ctx, drpo=True),
    "tw_grpo": _tw_grpo,
    "dynamic_reward_weighting": _dynamic_weights,
}


def _digit_fraction(completion_ids, mask):
    """Rule-based stand-in for a process reward model: the fraction of digit tokens in the completion."""
    from flowrl.text.arith import ALPHABET

    digits = torch.tensor([ALPHABET.index(c) for c in "0123456789" if c in ALPHABET])
    return (torch.isin(completion_ids, digits).float() * mask).sum(-1) / mask.sum(-1).clamp(min=1)


@pytest.fixture(scope="module")
def teacher_folder(tmp_path_factory):
    from tests.text.conftest import build_tiny

    return build_tiny(tmp_path_factory.mktemp("teacher_lm"), seed=1)


@pytest.mark.parametrize("rule", sorted([*RULES, "llds_inner_epochs"]))
def test_rule_trains_the_tiny_lm_in_a_two_step_loop(tiny_folder, teacher_folder, rule):
    torch.manual_seed(0)
    policy = load_policy(tiny_folder)
    teacher = load_policy(teacher_folder).model.eval().requires_grad_(False)
    rows = load_jsonl(tiny_folder / "train.jsonl")[:PROMPTS]
    prompt_ids = encode_prompts(policy.tokenizer, [r["prompt"] for r in rows], max_prompt_length=48)
    params = [p for p in policy.model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=1e-3)
    ctx = {
        "teacher": teacher,
        "model": policy.model,
        "tokenizer": policy.tokenizer,
        "eos_ids": policy.eos_ids,
        "scorer": _digit_fraction,
        "initial": {k: v.detach().clone() for k, v in policy.model.state_dict().items()},
        "answers": [r["answer"] for r in rows],
        "prompt_ids": prompt_ids,
    }
    for step in range(2):
        s = Step(policy, prompt_ids, step)
        if rule == "llds_inner_epochs":  # LLDS acts from the second inner epoch on, when logp has moved
            with torch.no_grad():
                old = s.logprobs(policy.model).logp
            adv = group_advantages(s.correct, s.gids)
            for _ in range(2):
                opt.zero_grad()
                lp = s.logprobs(policy.model)
                batch = PolicyBatch(lp.logp, old, adv, s.mask, kl=llds_penalty(lp.logp, old, adv, s.mask))
                loss = _loss(llds().objective, batch)
                loss.backward()
                opt.step()
        else:
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


@pytest.mark.parametrize("planner", ["knapsack", "gvm"])
def test_budget_planner_trains_the_tiny_lm(tiny_folder, planner):
    torch.manual_seed(0)
    policy = load_policy(tiny_folder)
    rows = load_jsonl(tiny_folder / "train.jsonl")[:PROMPTS]
    prompt_ids = encode_prompts(policy.tokenizer, [r["prompt"] for r in rows], max_prompt_length=48)
    params = [p for p in policy.model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=1e-3)
    budget = PROMPTS * GROUP
    success = torch.full((PROMPTS,), 0.5)  # Knapsack: success rates of the previous step (prior 0.5)
    head = policy.model.get_output_embeddings().weight
    for _ in range(2):
        if planner == "knapsack":
            counts = knapsack_allocation(success, budget=budget, n_min=2, n_max=10)
        else:  # GVM: pre-sample 4 per prompt, acceptance rate and gradient norm of the accepted samples' likelihood
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
        for i in range(PROMPTS):
            if (gids == i).any():
                success[i] = correct[gids == i].mean()
        opt.zero_grad()
        lp = completion_logprobs(policy.model, p_ids, p_mask, c_ids, c_mask)
        mask = c_mask.float()
        batch = PolicyBatch(lp.logp, lp.logp.detach(), group_advantages(correct, gids), mask)
        loss = _loss(grpo().objective, batch)
        loss.backward()
        opt.step()
        assert torch.isfinite(loss)
    assert any(not torch.equal(b, p) for b, p in zip(before, params, strict=True))
