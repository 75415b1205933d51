"""Rewards of ShapeWorld question answering, on completions ``<think> ... </think> <answer> X </answer>``.

Each is a `rewards.RewardFn`: ``fn(completions, prompts, metadata) -> (N,) float32``, reading the row's ``answer``
(and ``family``) from `metadata`:

* ``vqa_exact``: 1 when the extracted answer equals the row's answer (whitespace-normalised), else 0. A completion
  without a well-formed ``<answer>`` block, or that did not end (EOS), scores 0.
* ``vqa_partial``: ``vqa_exact``, except multi-choice rows (several correct letters) get TW-GRPO's soft
  partial credit (`choice_credit`).
* ``think_format``: 1 when the completion is exactly ``<think> ... </think> <answer> ... </answer>`` (DeepSeek-R1's
  format reward), else 0.
* ``think_objects`` [ours]: a perception reward on the reasoning: the multiset F1 ``2 |P & G| / (|P| + |G|)`` between
  the ``colour shape`` pairs the completion lists in ``<think>`` (P) and the row's reference list ``think`` (G, the
  scene's objects); 0 for a malformed or unfinished completion, an empty reasoning, or one that is not a list of pairs.
* ``think_consistency`` [ours]: 1 when the answer equals the one the completion's own object list implies
  (`flowrl.vlm.consistency_rate.implied_answer`, GRPO-CARE's consistency made exact), else 0.
"""

from __future__ import annotations

import re

import torch

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S)
_FORMAT = re.compile(r"^\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*$", re.S)


def extract_answer(text: str) -> str | None:
    """The text inside the last ``<answer> ... </answer>`` block (spaces normalised), or None."""
    found = _ANSWER.findall(text)
    return " ".join(found[-1].split()) if found else None


def extract_think(text: str) -> str | None:
    """The text inside ``<think> ... </think>`` of a well-formed completion, or None."""
    m = _FORMAT.match(text)
    return " ".join(m.group(1).split()) if m else None


def choice_credit(pred: str | None, gold: str) -> float:
    """TW-GRPO's multi-level reward for multi-choice answers (arXiv 2505.24718, Sec. 3.3, our reading): with the
    predicted and true option sets P and G, ``r = |P| / |G|`` if ``P`` is a non-empty subset of ``G``, else 0 (any
    wrong option scores 0; the full set scores 1). ``none`` (no correct option) is matched exactly."""
    if pred is None:
        return 0.0
    p, g = set(pred.split()), set(gold.split())
    if gold == "none" or pred == "none":
        return float(pred == gold)
    if not p or not p <= g:
        return 0.0
    return len(p) / len(g)


def _rows(metadata: list[dict] | None, what: str) -> list[dict]:
    if metadata is None:
        raise ValueError(f"{what} needs metadata with each row's 'answer' (the task JSONL column).")
    return metadata


class VQAExact:
    name = "vqa_exact"

    def __call__(self, completions: list[str], prompts: list[str], metadata: list[dict] | None = None) -> torch.Tensor:
        rows = _rows(metadata, self.name)
        out = [
            float(bool(m.get("terminated", True)) and extract_answer(c) == " ".join(str(m["answer"]).split()))
            for c, m in zip(completions, rows, strict=True)
        ]
        return torch.tensor(out, dtype=torch.float32)


class VQAPartial:
    name = "vqa_partial"

    def __call__(self, completions: list[str], prompts: list[str], metadata: list[dict] | None = None) -> torch.Tensor:
        rows = _rows(metadata, self.name)
        out = []
        for c, m in zip(completions, rows, strict=True):
            pred, gold = extract_answer(c), " ".join(str(m["answer"]).split())
            if not m.get("terminated", True):
                out.append(0.0)
            elif m.get("family") == "choice":
                out.append(choice_credit(pred, gold))
            else:
                out.append(float(pred == gold))
        return torch.tensor(out, dtype=torch.float32)


class ThinkFormat:
    name = "think_format"

    def __call__(self, completions: list[str], prompts: list[str], metadata: list[dict] | None = None) -> torch.Tensor:
        return torch.tensor([float(_FORMAT.match(c) is not None) for c in completions], dtype=torch.float32)


class ThinkObjects:
    name = "think_objects"

    def __call__(self, completions: list[str], prompts: list[str], metadata: list[dict] | None = None) -> torch.Tensor:
        from flowrl.vlm.consistency_rate import listed_objects, object_list_f1

        rows = _rows(metadata, self.name)
        out = []
        for c, m in zip(completions, rows, strict=True):
            if "think" not in m:
                raise ValueError(f"{self.name} needs each row's reference reasoning 'think' (the scene's objects).")
            think = extract_think(c)
            pred = listed_objects(think) if think is not None and m.get("terminated", True) else None
            out.append(object_list_f1(pred or [], listed_objects(str(m["think"])) or []))
        return torch.tensor(out, dtype=torch.float32)


class ThinkConsistency:
    """[ours] 1 when the answer equals the one the completion's own object list implies
    (`flowrl.vlm.consistency_rate.implied_answer`), else 0 (also when the list decides nothing)."""

    name = "think_consistency"

    def __call__(self, completions: list[str], prompts: list[str], metadata: list[dict] | None = None) -> torch.Tensor:
        from flowrl.shapes.questions import parse_question
        from flowrl.vlm.consistency_rate import implied_answer
        from flowrl.vlm.tasks import question_text

        out = []
        for c, prompt in zip(completions, prompts, strict=True):
            think, answer = extract_think(c), extract_answer(c)
            question = question_text(str(prompt))
            implied = None
            if think is not None and answer is not None:
                try:
                    implied = implied_answer(think, parse_question(question))
                except ValueError:
                    implied = None
            out.append(float(implied is not None and implied == answer))
        return torch.tensor(out, dtype=torch.float32)


VQA_REWARDS = {"vqa_exact": VQAExact, "vqa_partial": VQAPartial, "think_format": ThinkFormat,
               "think_objects": ThinkObjects, "think_consistency": ThinkConsistency}  # fmt: skip
