"""Base vs tuned VLM on the same held-out ShapeWorld questions, with the paired standard error of the difference.

Both models answer the same rows greedily (`flowrl.vlm.evaluate.evaluate_vlm`); with d_i = correct_after_i -
correct_before_i, the gain is mean(d) and its paired standard error sqrt(var(d) / n) (sample variance). Prints one
JSON object (accuracies, per-family accuracies, mean completion lengths, gain, paired SE, gain / SE).

    python scripts/vlm_before_after.py assets/shapeworld_vlm runs/<name>/final
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--questions", default="assets/shapeworld_vlm/test.jsonl")
    ap.add_argument("--rows", type=int, default=1000)
    args = ap.parse_args(argv)
    import torch

    from flowrl.text.data import load_jsonl
    from flowrl.vlm.evaluate import evaluate_vlm
    from flowrl.vlm.model import load_vlm
    from flowrl.vlm.tasks import bind_images

    torch.set_num_threads(1)
    rows = load_jsonl(args.questions)[: args.rows]
    out = {}
    for name, path in (("before", args.before), ("after", args.after)):
        model, tok = load_vlm(path)
        ev = evaluate_vlm(model, tok, bind_images(model, rows, base=Path(args.questions).parent))
        out[name] = {"model": path, "accuracy": ev.accuracy, "per_family": ev.per_family,
                     "mean_length": ev.mean_length, "count_consistency": ev.consistency,
                     "consistency_rate": ev.consistency_rate, "consistency_rows": ev.consistency_rows}  # fmt: skip
        out[f"{name}_correct"] = ev.correct
    d = [float(a) - float(b) for a, b in zip(out.pop("after_correct"), out.pop("before_correct"), strict=True)]
    n = len(d)
    mean = sum(d) / n
    se = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1) / n)
    out.update(rows=n, gain=mean, paired_se=se, gain_over_se=mean / se if se > 0 else math.inf)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
