"""Why a VLM does (not) answer ShapeWorld questions: answer priors, image signal, and perception through the reasoning.

For each model folder, on the first ``--rows`` rows of each question file:

* **answers**: the greedy answers per family against the true ones (does the model answer one thing to everything?);
* **probe**: teacher-force ``<think> </think> <answer>`` (``empty``) or ``<think> TRUE OBJECT LIST </think> <answer>``
  (``gold``) and read the answer-token probabilities restricted to the family's answers: the restricted-argmax
  accuracy, and for yes/no families the AUC of P(yes) between yes- and no-questions (0.5 = no image signal);
* **describe**: force a reasoning (``<think>`` prefix, greedy, up to ``</think>``) on composed scenes (``single``
  scenes left out) and score the object list against the scene: exact list, multiset F1, colour / shape right at
  each position, number of objects right.

Prints one JSON object per model and question file. Used for docs/vlm.md's "What limits held-out learning":

    OMP_NUM_THREADS=1 python scripts/vlm_diagnose.py assets/shapeworld_vlm runs/<name>/final \\
        --questions assets/shapeworld_vlm/test.jsonl runs/train_fresh.jsonl
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import torch

from flowrl.text.prompts import left_pad

YES_NO = ("exist", "relation")


def auc(pos: list[float], neg: list[float]) -> float:
    """P(a positive scores above a negative), ties counting one half (nan when a side is empty)."""
    if not pos or not neg:
        return float("nan")
    return sum((p > q) + 0.5 * (p == q) for p in pos for q in neg) / (len(pos) * len(neg))


def family_answers() -> dict[str, list[str]]:
    from flowrl.shapes.grammar import COLORS, SHAPES
    from flowrl.shapes.questions import NUMBER_WORDS

    return {"exist": ["yes", "no"], "relation": ["yes", "no"], "count": list(NUMBER_WORDS), "colour": list(COLORS),
            "shape": list(SHAPES)}  # fmt: skip


@torch.no_grad()
def probe(model, tok, rows: list[dict], *, gold_think: bool) -> dict:
    """Restricted-argmax accuracy per family and the yes/no AUC, the reasoning empty or the true object list."""
    answers = family_answers()
    rows = [r for r in rows if r["family"] in answers]
    hits: dict[str, list[bool]] = collections.defaultdict(list)
    p_yes: dict[str, tuple[list[float], list[float]]] = {f: ([], []) for f in YES_NO}
    for s in range(0, len(rows), 128):
        chunk = rows[s : s + 128]
        seqs = []
        for r in chunk:
            think = f" {r['think']}" if gold_think else ""
            tail = tok(f"<think>{think} </think> <answer>", add_special_tokens=False)["input_ids"]
            seqs.append(tok(r["prompt"])["input_ids"] + tail)
        ids, mask = left_pad(seqs, pad_id=tok.pad_token_id)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, -1]
        for r, row_logits in zip(chunk, logits, strict=True):
            cands = answers[r["family"]]
            p = torch.softmax(row_logits[tok.convert_tokens_to_ids(cands)], -1)
            hits[r["family"]].append(cands[int(p.argmax())] == r["answer"])
            if r["family"] in YES_NO:
                p_yes[r["family"]][0 if r["answer"] == "yes" else 1].append(float(p[0]))
    n = sum(len(v) for v in hits.values())
    return {"accuracy": sum(sum(v) for v in hits.values()) / max(n, 1),
            "per_family": {f: sum(v) / len(v) for f, v in sorted(hits.items())},
            "auc_yes": {f: auc(*v) for f, v in p_yes.items()}}  # fmt: skip


@torch.no_grad()
def describe(model, tok, rows: list[dict]) -> dict:
    """The forced reasoning's object list against the scene's, on composed scenes."""
    from flowrl.vlm.consistency_rate import listed_objects, object_list_f1

    rows = [r for r in rows if r.get("image_family") != "single"]
    if not rows:
        return {}
    end = tok.convert_tokens_to_ids("</think>")
    exact = f1 = count_ok = 0.0
    colour_hit = shape_hit = objects = 0
    for s in range(0, len(rows), 100):
        chunk = rows[s : s + 100]
        think = tok("<think>", add_special_tokens=False)["input_ids"]
        ids, mask = left_pad([tok(r["prompt"])["input_ids"] + think for r in chunk], pad_id=tok.pad_token_id)
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=12,
                             pad_token_id=tok.pad_token_id, eos_token_id=end)[:, ids.shape[1] :]  # fmt: skip
        for r, new in zip(chunk, out.tolist(), strict=True):
            text = tok.decode(new, skip_special_tokens=False).split("</think>")[0]
            pred = listed_objects(" ".join(w for w in text.split() if not w.startswith("<"))) or []
            gold = listed_objects(r["think"]) or []
            exact += pred == gold
            f1 += object_list_f1(pred, gold)
            count_ok += len(pred) == len(gold)
            for k, (c, shp) in enumerate(gold):
                objects += 1
                if k < len(pred):
                    colour_hit += pred[k][0] == c
                    shape_hit += pred[k][1] == shp
    n = len(rows)
    return {"scenes": n, "exact": exact / n, "f1": f1 / n, "count_ok": count_ok / n,
            "colour_at_position": colour_hit / objects, "shape_at_position": shape_hit / objects}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="VLM folders (LLaVA + tokenizer + image processor)")
    ap.add_argument("--questions", nargs="+", default=["assets/shapeworld_vlm/test.jsonl"])
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--describe-rows", type=int, default=500, help="composed scenes scored by 'describe'")
    args = ap.parse_args(argv)
    from flowrl.text.data import load_jsonl
    from flowrl.vlm.evaluate import evaluate_vlm
    from flowrl.vlm.model import load_vlm
    from flowrl.vlm.rewards import extract_answer
    from flowrl.vlm.tasks import bind_images

    torch.set_num_threads(1)
    for path in args.models:
        model, tok = load_vlm(path)
        model.eval()
        for questions in args.questions:
            rows = bind_images(model, load_jsonl(questions)[: args.rows], base=Path(questions).parent)
            ev = evaluate_vlm(model, tok, rows)
            said: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
            truth: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
            for r, text in zip(rows, ev.completions, strict=True):
                said[r["family"]][str(extract_answer(text))] += 1
                truth[r["family"]][r["answer"]] += 1
            composed = [r for r in rows if r.get("image_family") != "single"][: args.describe_rows]
            report = {
                "model": path, "questions": questions, "rows": len(rows), "accuracy": ev.accuracy,
                "per_family": ev.per_family,
                "answers": {f: dict(said[f].most_common(6)) for f in sorted(said)},
                "truth": {f: dict(truth[f].most_common(6)) for f in sorted(truth)},
                "probe_empty": probe(model, tok, rows, gold_think=False),
                "probe_gold": probe(model, tok, rows, gold_think=True),
                "describe": describe(model, tok, composed),
            }  # fmt: skip
            print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
