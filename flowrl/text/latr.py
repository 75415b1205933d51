"""LATR, Lookahead Tree-Based Rollouts (starreeze/latr, `model/generation.py` + `model/sample_filter.py`): a group
is grown as a tree of token prefixes instead of G independent samples.

At every decoding step each live branch b takes its most likely token (the "major" candidate, c_0 = argmax p_b),
and forks into a new branch on candidate c_i (i = 1 .. k-1, the next most likely tokens) when it is uncertain:

    fork(b, c_i)  <=>  p_b(c_i) > tau_abs  and  p_b(c_0) - p_b(c_i) < tau_rel                    (LATR eq. branching)

with p the untempered softmax. A root holds at most n branches: forks are admitted column by column (every branch's
c_1 before any c_2), in branch order, until the root is full. A branch born at step s is compared with its parent
after each lookahead length L in `lookahead` (at step s + L): it is pruned when their last L tokens stay too alike,

    prune(b)  <=>  Lev(b[s:s+L], parent[s:s+L]) / L < tau_ed                                          (LATR pruning)

(skipped when either continuation already holds an EOS). When every root is full -- sum over roots of n (all its
branches finished) or its branch count reaches round(n P (rho_0 - rho_decay t / T)) -- and no branch is still inside
its lookahead window, the tree returns; a root with fewer than n branches is filled with copies of its first branch,
and the unfinished prefixes are continued by ordinary sampling (`sample_groups`, the trainer's sampler). A share
1 - mix(step) of each group is plain sampling, annealed by the training step (`mix_schedule`).

Every live prefix is forwarded once per step through `StepLM` (a fork copies its parent's KV cache rows), so the
forward count is the number of distinct prefixes in the tree (`LatrTree.forwards`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from flowrl.text.prompts import left_pad
from flowrl.text.rollout import Rollout, SamplingConfig, completion_mask, sample_groups
from flowrl.text.step_lm import CachedLM, StepLM


class LatrParams(NamedTuple):
    """LATR's knobs; defaults are the paper's scripts (scripts/grpo-kt-countdown.sh, model/utils.py), see
    docs/papers_llm.md."""

    max_branch_per_token: int = 2  # k: candidates considered per step (max_n_branch_per_token)
    prob_abs: float = 0.25  # tau_abs (prob_filter_abs_thres)
    prob_rel: float = 0.15  # tau_rel (prob_filter_rel_thres)
    edit_dist: float = 0.4  # tau_ed (rollout_filter_edit_dist_thres)
    lookahead: tuple[int, ...] = (20, 30, 50)  # L (rollout_filter_steps), in tokens
    return_threshold: float = 0.98  # rho_0 (return_nb_thres_init)
    return_decay: float = 0.05  # rho_decay (return_nb_thres_decay)
    mix_schedule: tuple[tuple[int, float], ...] = ((0, 1.0), (10, 0.75), (20, 0.5), (80, 0.25), (200, 0.0))


class Branch(NamedTuple):
    root: int  # prompt index
    parent: int | None  # branch id it forked from (None: the root's first branch)
    birth: int  # position of the token where it left its parent
    tokens: list[int]  # completion tokens so far


class LatrTree(NamedTuple):
    prefixes: list[list[list[int]]]  # per root, n completion prefixes (filled), in branch order
    finished: list[list[bool]]  # per root, per prefix: ended with an EOS
    branches: list[Branch]  # every branch ever created (pruned ones included)
    pruned: set[int]  # ids of pruned branches
    forwards: int  # prefixes forwarded (StepLM.forwards after the prompts)
    steps: int  # decoding steps taken before returning


def mix_ratio(schedule: tuple[tuple[int, float], ...], step: int) -> float:
    """The LATR share of a group at training `step`: the value of the last schedule entry whose step is <= `step`."""
    ratio = schedule[0][1]
    for start, value in schedule:
        if start <= step:
            ratio = value
    return ratio


def edit_distance(a: list[int], b: list[int]) -> int:
    """Levenshtein distance between two token lists (insertions, deletions, substitutions cost 1)."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        cur = [i]
        for j, y in enumerate(b, start=1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def fork_mask(probs: torch.Tensor, *, k: int, prob_abs: float, prob_rel: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k candidates `(R, k)` of each row (most likely first) and `(R, k-1)` bool: may row r fork on candidate i
    (i >= 1)? ``p_i > prob_abs and p_0 - p_i < prob_rel`` (LATR branching)."""
    top_p, top_i = probs.topk(k, dim=-1)  # (R, k)
    ok = (top_p[:, 1:] > prob_abs) & (top_p[:, :1] - top_p[:, 1:] < prob_rel)  # (R, k-1)
    return top_i, ok


@torch.no_grad()
def grow_tree(
    lm: StepLM,
    prompt_rows: list[list[int]],
    *,
    n: int,
    max_new_tokens: int,
    eos_ids: set[int],
    params: LatrParams,
) -> LatrTree:
    """Grow one LATR tree of at most `n` branches per prompt (module docstring); returns the filled prefixes."""
    if n < 1:
        raise ValueError(f"LATR needs at least one branch per prompt, got n={n}.")
    P, k = len(prompt_rows), params.max_branch_per_token
    start = lm.forwards
    logits = lm.start(prompt_rows)  # (P, V)
    branches = [Branch(j, None, 0, []) for j in range(P)]
    live = list(range(P))  # branch id of each row of `logits`
    done: set[int] = set()
    pruned: set[int] = set()
    per_root = [[j] for j in range(P)]  # branch ids of each root (pruned ones removed)
    longest = max(params.lookahead) if params.lookahead else 0
    step = 0
    for step in range(max_new_tokens):
        probs = torch.softmax(logits.float(), dim=-1)  # (R, V) raw probabilities (no temperature)
        top_i, ok = fork_mask(probs, k=min(k, probs.shape[-1]), prob_abs=params.prob_abs, prob_rel=params.prob_rel)
        room = [n - len(per_root[j]) for j in range(P)]
        forks: list[tuple[int, int]] = []  # (row, candidate token)
        for col in range(ok.shape[1]):  # column-major admission: every c_1 before any c_2
            for r in range(len(live)):
                root = branches[live[r]].root
                if ok[r, col] and room[root] > 0:
                    room[root] -= 1
                    forks.append((r, int(top_i[r, col + 1])))
        rows, toks = [], []
        for r, b in enumerate(live):  # the major candidate extends the branch itself
            tok = int(top_i[r, 0])
            branches[b].tokens.append(tok)
            rows.append(r)
            toks.append(tok)
        for r, tok in forks:
            parent = branches[live[r]]
            b = len(branches)
            branches.append(Branch(parent.root, live[r], step, parent.tokens[:-1] + [tok]))
            per_root[parent.root].append(b)
            live.append(b)
            rows.append(r)
            toks.append(tok)
        for b in live:
            if branches[b].tokens[-1] in eos_ids:
                done.add(b)
        for b in _to_prune(branches, live, done, pruned, step + 1, params, eos_ids):
            pruned.add(b)
            per_root[branches[b].root].remove(b)
        keep = [i for i, b in enumerate(live) if b not in pruned and b not in done]
        live = [live[i] for i in keep]
        if not live or step + 1 == max_new_tokens:
            break
        if _full(per_root, branches, done, n, step, max_new_tokens, params, longest, live):
            break
        logits = lm.advance(torch.tensor([rows[i] for i in keep]), torch.tensor([toks[i] for i in keep]))
    prefixes, finished = [], []
    for j in range(P):
        ids = per_root[j] + [per_root[j][0]] * (n - len(per_root[j]))  # fill with the first branch
        prefixes.append([list(branches[b].tokens) for b in ids])
        finished.append([b in done for b in ids])
    return LatrTree(prefixes, finished, branches, pruned, lm.forwards - start - P, step + 1)


def _to_prune(
    branches: list[Branch], live: list[int], done: set[int], pruned: set[int], length: int, params: LatrParams,
    eos_ids: set[int],
) -> list[int]:  # fmt: skip
    """Branches whose lookahead window of some L in params.lookahead ends now and whose continuation stays within
    edit distance tau_ed * L of their parent's (LATR pruning)."""
    out = []
    for b in live:
        br = branches[b]
        if br.parent is None or br.parent in pruned or b in pruned:
            continue
        span = length - br.birth
        if span not in params.lookahead:
            continue
        parent = branches[br.parent].tokens
        a, p = br.tokens[br.birth : length], parent[br.birth : length]
        if len(p) < span or any(t in eos_ids for t in a) or any(t in eos_ids for t in p):
            continue
        if edit_distance(a, p) / span < params.edit_dist:
            out.append(b)
    return out


def _full(
    per_root: list[list[int]], branches: list[Branch], done: set[int], n: int, step: int, max_new_tokens: int,
    params: LatrParams, longest: int, live: list[int],
) -> bool:  # fmt: skip
    """LATR's return-on-full test: effective branch counts reach the decaying threshold and no live branch is still
    inside its lookahead window."""
    eff = sum(n if all(b in done for b in ids) else len(ids) for ids in per_root)
    thres = params.return_threshold - params.return_decay * step / max_new_tokens
    if eff < round(n * len(per_root) * thres):
        return False
    return all(branches[b].birth + longest < step for b in live)


def distinct_per_group(completions: list[list[int]], groups: list[int]) -> float:
    """Mean number of distinct completions per group (the diversity figure LATR reports beside sampling)."""
    seen: dict[int, set[tuple[int, ...]]] = {}
    for c, g in zip(completions, groups, strict=True):
        seen.setdefault(g, set()).add(tuple(c))
    return sum(len(s) for s in seen.values()) / max(len(seen), 1)


class LatrRollout(NamedTuple):
    rollout: Rollout  # N = P x G rows: per prompt, its tree's n branches then G - n sampled completions
    tree: LatrTree | None  # None when mix(step) gives no LATR branch
    n_tree: int  # branches per group that came from the tree


@torch.no_grad()
def latr_groups(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt_rows: list[list[int]],
    *,
    group_size: int,
    sampling: SamplingConfig,
    eos_ids: set[int],
    params: LatrParams,
    step: int,
    prefill_once: bool = True,
) -> LatrRollout:
    """G completions per prompt: n = round(G mix(step)) from one LATR tree per prompt (unfinished prefixes continued
    by `sample_groups`), the other G - n sampled by `sample_groups` from the prompt. Same `Rollout` as sampling."""
    P, pad = len(prompt_rows), tokenizer.pad_token_id
    n = round(group_size * mix_ratio(params.mix_schedule, step))
    comps: list[list[list[int]]] = [[] for _ in range(P)]  # per prompt, G completion token lists
    tree = None
    if n > 0:
        tree = grow_tree(
            CachedLM(model, pad_id=pad), prompt_rows, n=n, max_new_tokens=sampling.max_new_tokens, eos_ids=eos_ids,
            params=params,
        )  # fmt: skip
        open_rows = [(j, i) for j in range(P) for i in range(n) if not tree.finished[j][i]]
        used = max((len(tree.prefixes[j][i]) for j, i in open_rows), default=sampling.max_new_tokens)
        cont: list[list[int]] = [[] for _ in open_rows]
        if open_rows and used < sampling.max_new_tokens:  # every open prefix has the same length: one batch
            ro = sample_groups(
                model, tokenizer, [prompt_rows[j] + tree.prefixes[j][i] for j, i in open_rows], group_size=1,
                sampling=sampling._replace(max_new_tokens=sampling.max_new_tokens - used), eos_ids=eos_ids,
                prefill_once=False,
            )  # fmt: skip
            cont = [r[: int(m.sum())] for r, m in zip(ro.completion_ids.tolist(), ro.completion_mask, strict=True)]
        extra = dict(zip(open_rows, cont, strict=True))
        for j in range(P):
            comps[j] = [tree.prefixes[j][i] + extra.get((j, i), []) for i in range(n)]
    if n < group_size:
        ro = sample_groups(
            model, tokenizer, prompt_rows, group_size=group_size - n, sampling=sampling, eos_ids=eos_ids,
            prefill_once=prefill_once,
        )  # fmt: skip
        for r, (c, m) in enumerate(zip(ro.completion_ids.tolist(), ro.completion_mask, strict=True)):
            comps[r // (group_size - n)].append(c[: int(m.sum())])
    return LatrRollout(_as_rollout(prompt_rows, comps, pad_id=pad, eos_ids=eos_ids, device=model.device), tree, n)


def _as_rollout(
    prompt_rows: list[list[int]], comps: list[list[list[int]]], *, pad_id: int, eos_ids: set[int],
    device: torch.device,
) -> Rollout:  # fmt: skip
    """A `Rollout` of per-prompt completion lists: prompts left-padded and repeated, completions right-padded."""
    G = len(comps[0])
    ids, mask = left_pad(prompt_rows, pad_id=pad_id)  # (P, L)
    flat = [c for group in comps for c in group]
    width = max(1, max(len(c) for c in flat))
    c_ids = torch.full((len(flat), width), pad_id, dtype=torch.long)  # (N, C)
    for i, c in enumerate(flat):
        c_ids[i, : len(c)] = torch.tensor(c, dtype=torch.long)
    c_mask, truncated = completion_mask(c_ids, eos_ids=eos_ids)
    c_mask = c_mask * (torch.arange(width)[None, :] < torch.tensor([len(c) for c in flat])[:, None])
    c_ids = torch.where(c_mask.bool(), c_ids, pad_id)
    groups = torch.arange(len(prompt_rows)).repeat_interleave(G)
    return Rollout(
        ids.repeat_interleave(G, 0).to(device), mask.repeat_interleave(G, 0).to(device), c_ids.to(device),
        c_mask.to(device), truncated.to(device), groups.to(device),
    )  # fmt: skip
