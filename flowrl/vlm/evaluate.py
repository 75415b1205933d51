"""Held-out evaluation of a VLM on question rows: accuracy per question family, mean completion length, pass@k.

Greedy decoding scores ``vqa_exact`` per row (the answer inside ``<answer>`` equals the row's, the completion ended);
pass@k samples k completions per row at temperature 1 and uses the unbiased estimator of Chen et al. (arXiv
2107.03374, Eq. 1) ``pass@k = 1 - C(n - c, k) / C(n, k)`` with n = k samples, so it is the fraction of rows with at
least one correct sample. The standard error of an accuracy over N rows is ``sqrt(p (1 - p) / N)``. GRPO-CARE's
consistency rate (`flowrl.vlm.consistency_rate`: the answer equals the one the completion's own object list implies,
over the greedy completions whose list decides their question) is reported beside accuracy.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from flowrl.vlm.consistency_rate import consistency_rate
from flowrl.vlm.rewards import extract_answer, extract_think


class VLMEval(NamedTuple):
    accuracy: float
    stderr: float
    per_family: dict[str, float]  # family -> greedy accuracy
    mean_length: float  # completion tokens, EOS included
    pass_at_k: float | None
    k: int
    consistency: float  # among well-formed completions: the reasoning's objects support the answer (count family)
    correct: list[bool]  # per row, greedy
    completions: list[str]
    consistency_rate: float = float("nan")  # GRPO-CARE's rate, every family (flowrl.vlm.consistency_rate)
    consistency_rows: int = 0  # greedy completions whose reasoning decides their question


def generate_completions(
    model, tokenizer, prompts: list[str], *, max_new_tokens: int, do_sample: bool = False, batch_size: int = 256
) -> tuple[list[str], list[int], list[bool]]:
    """Completions of bound prompts (greedy, or sampled at temperature 1): texts up to EOS, lengths in tokens (EOS
    included) and whether each ended."""
    from flowrl.text.evaluate import completion_text, eos_token_ids
    from flowrl.text.prompts import encode_prompts, left_pad

    eos = eos_token_ids(model, tokenizer)
    texts, lengths, ended = [], [], []
    for s in range(0, len(prompts), batch_size):
        ids, mask = left_pad(encode_prompts(tokenizer, prompts[s : s + batch_size], max_prompt_length=512),
                             pad_id=tokenizer.pad_token_id)  # fmt: skip
        out = model.generate(
            input_ids=ids.to(model.device), attention_mask=mask.to(model.device), do_sample=do_sample,
            max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id, eos_token_id=sorted(eos),
            **({"temperature": 1.0, "top_k": 0} if do_sample else {}),
        )[:, ids.shape[1] :].tolist()  # fmt: skip
        for row in out:
            text, done = completion_text(tokenizer, row, eos_ids=eos)
            n = next((i + 1 for i, t in enumerate(row) if t in eos), len(row))
            texts.append(text)
            lengths.append(n)
            ended.append(done)
    return texts, lengths, ended


def count_consistent(think: str | None, answer: str | None, question: str) -> bool | None:
    """For a count question: whether the number of listed objects matching it equals the answer (None otherwise)."""
    from flowrl.shapes.questions import NUMBER_WORDS, parse_question

    q = parse_question(question)
    if q.family != "count" or think is None or answer is None:
        return None
    words = think.split()
    pairs = list(zip(words[0::2], words[1::2], strict=False))
    n = sum((q.color is None or c == q.color) and (q.shape is None or s == q.shape) for c, s in pairs)
    return n < len(NUMBER_WORDS) and NUMBER_WORDS[n] == answer


@torch.no_grad()
def evaluate_vlm(
    model,
    tokenizer,
    rows: list[dict],
    *,
    max_new_tokens: int = 24,
    k: int = 0,
    batch_size: int = 256,
    seed: int = 0,
) -> VLMEval:
    """Greedy accuracy (overall, per family), mean completion length, and pass@k (k > 0) on bound rows
    (`flowrl.vlm.tasks.bind_images`): each row's ``prompt`` holds its image key; ``answer`` and ``family`` score it."""
    from flowrl.vlm.tasks import question_text  # rows are validated (check_question) when bound

    if not rows:
        raise ValueError("No held-out rows to evaluate: pass at least one question row.")
    was_training = model.training
    model.eval()
    try:
        prompts = [str(r["prompt"]) for r in rows]
        texts, lengths, ended = generate_completions(
            model, tokenizer, prompts, max_new_tokens=max_new_tokens, do_sample=False, batch_size=batch_size
        )
        gold = [" ".join(str(r["answer"]).split()) for r in rows]
        correct = [bool(e and extract_answer(t) == g) for t, e, g in zip(texts, ended, gold, strict=True)]
        pass_k = None
        if k > 0:
            torch.manual_seed(seed)
            hit = [False] * len(rows)
            for _ in range(k):
                s_texts, _, s_ended = generate_completions(
                    model, tokenizer, prompts, max_new_tokens=max_new_tokens, do_sample=True, batch_size=batch_size
                )
                for i, (t, e) in enumerate(zip(s_texts, s_ended, strict=True)):
                    hit[i] = hit[i] or bool(e and extract_answer(t) == gold[i])
            pass_k = sum(hit) / len(rows)
    finally:
        model.train(was_training)
    fams: dict[str, list[bool]] = {}
    for r, c in zip(rows, correct, strict=True):
        fams.setdefault(str(r.get("family", "all")), []).append(c)
    checks, questions = [], []
    for r, t in zip(rows, texts, strict=True):
        question = question_text(str(r["prompt"]))
        questions.append(question)
        if r.get("family") == "count":
            v = count_consistent(extract_think(t), extract_answer(t), question)
            if v is not None:
                checks.append(v)
    acc = sum(correct) / len(rows)
    rate = consistency_rate([extract_think(t) for t in texts], [extract_answer(t) for t in texts], questions)
    return VLMEval(
        accuracy=acc,
        stderr=math.sqrt(acc * (1 - acc) / len(rows)),
        per_family={f: sum(v) / len(v) for f, v in sorted(fams.items())},
        mean_length=sum(lengths) / len(lengths),
        pass_at_k=pass_k,
        k=k,
        consistency=sum(checks) / len(checks) if checks else math.nan,
        correct=correct,
        completions=texts,
        consistency_rate=rate.rate,
        consistency_rows=rate.decidable,
    )
