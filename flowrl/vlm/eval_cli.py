"""`flowrl eval --vlm MODEL [--questions test.jsonl] [--rows N] [--k K] [--json out.json]`: score a VLM on held-out
ShapeWorld questions: greedy accuracy with its standard error, accuracy per question family, mean completion length,
the count family's reasoning-answer consistency, GRPO-CARE's consistency rate over every family (with the number of
completions whose reasoning decides their question; `flowrl.vlm.consistency_rate`), and pass@k (k sampled completions
per row)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="flowrl eval --vlm", description=__doc__.splitlines()[0])
    ap.add_argument("model", help="a VLM folder (LLaVA), e.g. assets/shapeworld_vlm or runs/<name>/final")
    ap.add_argument("--questions", default="assets/shapeworld_vlm/test.jsonl", help="question rows (JSONL)")
    ap.add_argument("--rows", type=int, default=1000, help="first N rows")
    ap.add_argument("--k", type=int, default=0, help="pass@k samples per row (0 = greedy only)")
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--json", default="", help="write the result to this file")
    args = ap.parse_args(argv)
    from flowrl.runtime.paths import resolve_path
    from flowrl.text.data import load_jsonl
    from flowrl.vlm.evaluate import evaluate_vlm
    from flowrl.vlm.model import load_vlm
    from flowrl.vlm.tasks import bind_images

    try:
        model, tok = load_vlm(resolve_path(args.model, what="VLM folder"))
        path = resolve_path(args.questions, what="question file")
        rows = bind_images(model, load_jsonl(path, what="question file")[: args.rows], base=Path(path).parent)
    except (ValueError, FileNotFoundError, TypeError) as e:
        print(f"flowrl eval --vlm: {e}", file=sys.stderr)
        return 2
    ev = evaluate_vlm(model, tok, rows, max_new_tokens=args.max_new_tokens, k=args.k)
    out = {
        "model": args.model, "rows": len(rows), "accuracy": ev.accuracy, "stderr": ev.stderr,
        "per_family": ev.per_family, "mean_length": ev.mean_length, "count_consistency": ev.consistency,
        "consistency_rate": ev.consistency_rate, "consistency_rows": ev.consistency_rows,
        **({f"pass@{ev.k}": ev.pass_at_k} if ev.k else {}),
    }  # fmt: skip
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps({**out, "correct": ev.correct}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
