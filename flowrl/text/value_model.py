"""ReST-RL's value model (VM) on a causal LM, its training targets from VM-MCTS, and VM-MCTS decoding.

The search itself is `flowrl/text/vm_mcts.py`; this file binds it to models:

- `PolicySampler`: the search's continuations from the policy through the trainer's sampler (`sample_groups`, one
  batched call per search round over all trees; each state is the prompt's ids + the partial completion's tokens).
- `RewardScorer` (collect): the task's reward functions on (prompt row, completion), weighted sum.
- `ValueScorer` (decode): the VM's value of (prompt, partial or whole completion), clamped to [0, 1] (min_rw / max_rw).
- The VM is the official `transformers_scalar` class: a transformers sequence classifier with one output (the causal
  LM's backbone, the last non-pad position's hidden state through a linear `score` head), initialised from the policy
  folder and trained with the squared error to the MCTS targets (`rms/reward_models.py`); its input is the prompt
  ids, the completion's tokens and EOS when the completion ended. Here the VM is the tiny chain LM itself (1M
  parameters), fully fine-tuned on CPU; lr, batch and epochs are ours (the README's 1e-7 / 2 epochs are for 7B).

`collect_value_targets` runs the collect search on training problems and returns (prompt, completion, target) triples;
`train_value_model` fits the VM; `vm_mcts_decode` answers held-out problems (the CLI: `flowrl eval-text --decode
vm_mcts --value-model PATH`; the training script: `scripts/train_value_model.py`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch
from transformers import AutoModelForSequenceClassification, PreTrainedModel, PreTrainedTokenizerBase

from flowrl.grpo import weighted_sum
from flowrl.text.evaluate import completion_text
from flowrl.text.rollout import SamplingConfig, sample_groups
from flowrl.text.task_rewards import score_completions
from flowrl.text.vm_mcts import Completion, MctsParams, Node, best_completion, nodes, search, value_targets

MIN_VALUE, MAX_VALUE = 0.0, 1.0  # the code's min_rw / max_rw: the VM's output is clamped to them when scoring


def state_ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """Token ids of a (partial) completion text, no special tokens."""
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


class PolicySampler:
    """The search's `Sampler`: `num_sample` continuations of each (problem, state) from the policy, each cut to the
    completion budget left after the state. Counts the generated tokens (within budget) in `tokens`."""

    def __init__(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompt_ids: list[list[int]], *,
        num_sample: int, temperature: float, max_new_tokens: int, eos_ids: set[int], chunk: int = 256,
    ) -> None:  # fmt: skip
        self.model, self.tokenizer, self.prompt_ids = model, tokenizer, prompt_ids
        self.k, self.temperature, self.max_new_tokens, self.eos_ids = num_sample, temperature, max_new_tokens, eos_ids
        self.chunk, self.tokens = chunk, 0

    @torch.no_grad()
    def __call__(self, leaves: list[tuple[int, str]]) -> list[list[Completion]]:
        rows, budgets = [], []
        for i, state in leaves:
            s = state_ids(self.tokenizer, state)
            rows.append(self.prompt_ids[i] + s)
            budgets.append(self.max_new_tokens - len(s))
        out: list[list[Completion]] = [[] for _ in leaves]
        budget = max(budgets)
        if budget < 1:
            return [[Completion("", False)] * self.k for _ in leaves]
        sampling = SamplingConfig(budget, self.temperature)
        for s in range(0, len(rows), self.chunk):
            ro = sample_groups(
                self.model, self.tokenizer, rows[s : s + self.chunk], group_size=self.k, sampling=sampling,
                eos_ids=self.eos_ids,
            )  # fmt: skip
            ids, lengths = (ro.completion_ids * ro.completion_mask).tolist(), ro.completion_mask.sum(-1).tolist()
            for r, (row, n) in enumerate(zip(ids, lengths, strict=True)):
                j = s + r // self.k
                n = min(n, max(budgets[j], 0))
                self.tokens += n
                out[j].append(Completion(*completion_text(self.tokenizer, row[:n], eos_ids=self.eos_ids)))
        return out


class RewardScorer:
    """The collect search's `Scorer`: the task's rewards of (row, completion), weighted sum."""

    def __init__(self, reward_fns: list, weights: list[float], rows: list[dict]) -> None:
        self.fns, self.weights, self.rows = reward_fns, torch.tensor(weights), rows

    def __call__(self, items: list[tuple[int, Completion]]) -> list[float]:
        rows = [self.rows[i] for i, _ in items]
        meta = [{**r, "terminated": c.ended} for r, (_, c) in zip(rows, items, strict=True)]
        rewards = score_completions(self.fns, [c.text for _, c in items], [r["prompt"] for r in rows], meta)[0]
        return weighted_sum(rewards, weights=self.weights).tolist()


def value_inputs(
    tokenizer: PreTrainedTokenizerBase, prompt_ids: list[int], completion: Completion, *, eos_id: int
) -> list[int]:
    """The VM's input ids: prompt, completion tokens, and EOS if the completion ended."""
    return prompt_ids + state_ids(tokenizer, completion.text) + ([eos_id] if completion.ended else [])


def right_pad(rows: list[list[int]], *, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`(N, L)` ids right-padded with `pad_id` and the attention mask (the classifier reads the last non-pad token,
    and positions start at 0 in every row)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)], mask[i, : len(r)] = torch.tensor(r, dtype=torch.long), 1
    return ids, mask


@torch.no_grad()
def predict_values(vm: PreTrainedModel, rows: list[list[int]], *, pad_id: int, batch_size: int = 512) -> torch.Tensor:
    """`(N,)` VM values of input id rows, clamped to [MIN_VALUE, MAX_VALUE]."""
    was_training = vm.training
    vm.eval()
    out = []
    try:
        for s in range(0, len(rows), batch_size):
            ids, mask = right_pad(rows[s : s + batch_size], pad_id=pad_id)
            out.append(vm(input_ids=ids.to(vm.device), attention_mask=mask.to(vm.device)).logits[:, 0].float().cpu())
    finally:
        vm.train(was_training)
    return torch.cat(out).clamp(MIN_VALUE, MAX_VALUE)


class ValueScorer:
    """The decode search's `Scorer`: the VM's value of (prompt, completion or state)."""

    def __init__(
        self, vm: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompt_ids: list[list[int]], *, eos_id: int
    ) -> None:
        self.vm, self.tokenizer, self.prompt_ids, self.eos_id = vm, tokenizer, prompt_ids, eos_id
        self.calls = 0

    def __call__(self, items: list[tuple[int, Completion]]) -> list[float]:
        rows = [value_inputs(self.tokenizer, self.prompt_ids[i], c, eos_id=self.eos_id) for i, c in items]
        self.calls += len(rows)
        return predict_values(self.vm, rows, pad_id=self.tokenizer.pad_token_id).tolist()


def init_value_model(policy_path: str | Path) -> PreTrainedModel:
    """A VM initialised from a causal LM folder: its backbone and a new one-output `score` head."""
    return AutoModelForSequenceClassification.from_pretrained(policy_path, num_labels=1)


def load_value_model(path: str | Path, *, field: str = "--value-model") -> PreTrainedModel:
    """A trained VM folder (written by `scripts/train_value_model.py`); a missing folder is an error naming `field`."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"{field} {str(path)!r} is not a value-model folder (no config.json there). Train one with "
            "`python scripts/train_value_model.py --out <folder>` and pass that folder."
        )
    return AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)


class ValueExample(NamedTuple):
    ids: list[int]  # VM input
    target: float


def train_value_model(
    vm: PreTrainedModel, examples: list[ValueExample], *, lr: float, epochs: int, batch_size: int, seed: int,
    on_epoch: Callable[[int], None] | None = None,
) -> list[float]:  # fmt: skip
    """Fit the VM to the targets: mean squared error of its raw output, AdamW, shuffled mini-batches (the code sums
    the squared errors; a mean keeps the step size independent of the batch). Returns the mean loss of each epoch;
    `on_epoch(epoch)` is called after each (e.g. a held-out check)."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(vm.parameters(), lr=lr)
    pad_id = int(vm.config.pad_token_id)
    targets = torch.tensor([e.target for e in examples], dtype=torch.float32)
    vm.train()
    losses = []
    for _ in range(epochs):
        perm, total = torch.randperm(len(examples), generator=g).tolist(), 0.0
        for s in range(0, len(perm), batch_size):
            idx = perm[s : s + batch_size]
            ids, mask = right_pad([examples[i].ids for i in idx], pad_id=pad_id)
            pred = vm(input_ids=ids.to(vm.device), attention_mask=mask.to(vm.device)).logits[:, 0].float()
            loss = torch.nn.functional.mse_loss(pred, targets[idx].to(pred.device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(examples))
        if on_epoch is not None:
            on_epoch(len(losses))
            vm.train()
    vm.eval()
    return losses


class SearchResult(NamedTuple):
    roots: list[Node]
    generated_tokens: int


def run_search(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompt_ids: list[list[int]], score, *,
    params: MctsParams, phase: str, temperature: float, max_new_tokens: int, eos_ids: set[int], seed: int,
    problems_per_search: int = 250,
) -> SearchResult:  # fmt: skip
    """One tree per prompt, searched `problems_per_search` at a time (trees of a batch in lockstep). Sampling draws
    from torch's global generator seeded with `seed`, tie-breaks from `random.Random(seed)`."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    was_training = model.training
    model.eval()
    roots, tokens = [], 0
    try:
        for s in range(0, len(prompt_ids), problems_per_search):
            part = list(range(s, min(s + problems_per_search, len(prompt_ids))))
            sampler = PolicySampler(
                model, tokenizer, [prompt_ids[i] for i in part], num_sample=params.num_sample,
                temperature=temperature, max_new_tokens=max_new_tokens, eos_ids=eos_ids,
            )  # fmt: skip

            def local_score(items: list[tuple[int, Completion]], part: list[int] = part) -> list[float]:
                return score([(part[i], c) for i, c in items])

            trees = [Node("") for _ in part]
            search(trees, params=params, sample=sampler, score=local_score, phase=phase, rng=rng)
            roots += trees
            tokens += sampler.tokens
    finally:
        model.train(was_training)
    return SearchResult(roots, tokens)


def collect_value_targets(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, rows: list[dict], prompt_ids: list[list[int]], *,
    reward_fns: list, weights: list[float], params: MctsParams, temperature: float, max_new_tokens: int,
    eos_ids: set[int], seed: int,
) -> tuple[list[tuple[int, Completion, float, bool]], int]:  # fmt: skip
    """The collect search on `rows` (verified rewards back-propagated, no annotation): (row index, completion or
    state, target, is_state) per target, and the generated token count."""
    res = run_search(
        model, tokenizer, prompt_ids, RewardScorer(reward_fns, weights, rows), params=params, phase="collect",
        temperature=temperature, max_new_tokens=max_new_tokens, eos_ids=eos_ids, seed=seed,
    )  # fmt: skip
    out = [(i, *vt) for i, root in enumerate(res.roots) for vt in value_targets(root)]
    return out, res.generated_tokens


class DecodeResult(NamedTuple):
    answers: list[Completion]  # the best VM-scored completion per prompt
    trees: list[list[Completion]]  # every completion of each prompt's tree
    generated_tokens: int
    vm_calls: int


def vm_mcts_decode(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, vm: PreTrainedModel, prompt_ids: list[list[int]], *,
    params: MctsParams, temperature: float, max_new_tokens: int, eos_ids: set[int], seed: int,
) -> DecodeResult:  # fmt: skip
    """VM-MCTS answers of the prompts: the best VM-scored completion of each tree; also every tree's completions (to
    measure how often the search found a correct one), the generated tokens and the VM evaluations."""
    eos_id = min(eos_ids) if tokenizer.eos_token_id is None else int(tokenizer.eos_token_id)
    scorer = ValueScorer(vm, tokenizer, prompt_ids, eos_id=eos_id)
    res = run_search(
        model, tokenizer, prompt_ids, scorer, params=params, phase="decode", temperature=temperature,
        max_new_tokens=max_new_tokens, eos_ids=eos_ids, seed=seed,
    )  # fmt: skip
    trees = [[c[0] for node in nodes(root) for c in node.completions] for root in res.roots]
    return DecodeResult([best_completion(root) for root in res.roots], trees, res.generated_tokens, scorer.calls)


__all__ = [
    "DecodeResult",
    "PolicySampler",
    "RewardScorer",
    "ValueExample",
    "ValueScorer",
    "collect_value_targets",
    "init_value_model",
    "load_value_model",
    "predict_values",
    "train_value_model",
    "value_inputs",
    "vm_mcts_decode",
]
