"""Every `flowrl train-vlm` preset against GRPO at an equal generated-token budget, on the same held-out questions.

Each preset trains from the same base with the same seed until it has generated ``--tokens`` completion tokens
(`train.max_generated_tokens`), one run after the other (one process at a time), with the overrides given after
``--``. Then the base and every tuned model answer the first ``--rows`` held-out questions greedily, and, on fresh
training-split questions (unseen scenes of training compositions, ``--train-questions``), the same. Per preset:
accuracy, the paired gain over the base with its paired standard error (d_i = correct_after_i - correct_before_i,
SE = sqrt(var(d) / n)), per-family accuracy, mean completion length, the count family's reasoning-answer consistency,
GRPO-CARE's consistency rate over every family (`flowrl.vlm.consistency_rate`) with the number of completions it
covers, the run's mean fraction of zero-variance groups (`frac_reward_zero_std`), steps and CPU minutes. Writes one
JSON.

    OMP_NUM_THREADS=1 nice -n 5 python scripts/bench_vlm_presets.py --tokens 120000 --out runs/vlm_presets.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

PRESETS = ("grpo", "grpo_d", "tw_grpo", "ton", "grpo_care", "vas", "vade", "reg_grpo")


def paired(before: list[bool], after: list[bool]) -> tuple[float, float]:
    """Mean of d = after - before and its paired standard error."""
    d = [float(a) - float(b) for a, b in zip(after, before, strict=True)]
    n = len(d)
    mean = sum(d) / n
    return mean, math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1) / n)


def evaluate(folder: str, questions: str, rows: int) -> dict:
    from flowrl.text.data import load_jsonl
    from flowrl.vlm.evaluate import evaluate_vlm
    from flowrl.vlm.model import load_vlm
    from flowrl.vlm.tasks import bind_images

    model, tok = load_vlm(folder)
    task = bind_images(model, load_jsonl(questions)[:rows], base=Path(questions).parent)
    ev = evaluate_vlm(model, tok, task)
    return {"accuracy": ev.accuracy, "per_family": ev.per_family, "mean_length": ev.mean_length,
            "count_consistency": ev.consistency, "consistency_rate": ev.consistency_rate,
            "consistency_rows": ev.consistency_rows, "correct": ev.correct}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=list(PRESETS))
    ap.add_argument("--tokens", type=int, default=120_000, help="generated completion tokens per run")
    ap.add_argument("--base", default="assets/shapeworld_vlm")
    ap.add_argument("--questions", default="assets/shapeworld_vlm/test.jsonl")
    ap.add_argument("--train-questions", default="", help="fresh training-split questions (write_task, split train)")
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--root", default="runs/vlm_presets")
    ap.add_argument("--out", default="runs/vlm_presets.json")
    ap.add_argument("overrides", nargs="*", help="key.path=value for every run (after --)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    results: dict = {"tokens": args.tokens, "overrides": args.overrides, "base": args.base, "runs": {}}
    for preset in args.presets:
        name = f"{preset}_{args.tokens}"
        cmd = [sys.executable, "-m", "flowrl.vlm_cli", "--preset", preset, f"model.path={args.base}",
               f"train.max_generated_tokens={args.tokens}", "train.time_limit_minutes=0", "eval.every_minutes=0",
               f"run.root={args.root}", f"run.name={name}", "run.tensorboard=false", *args.overrides]  # fmt: skip
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        metrics = [json.loads(line) for line in (Path(args.root) / name / "metrics.jsonl").read_text().splitlines()]
        steps = [m for m in metrics if "reward" in m]
        results["runs"][preset] = {
            "folder": str(Path(args.root) / name / "final"),
            "steps": metrics[-1]["step"],
            "generated_tokens": metrics[-1].get("generated_tokens"),
            "cpu_minutes": metrics[-1]["process_cpu_time"] / 60,
            "train_minutes": metrics[-1]["train_minutes"],
            "frac_reward_zero_std": sum(m["frac_reward_zero_std"] for m in steps) / len(steps),
            "train_reward_first_last": [steps[0]["reward"], steps[-1]["reward"]],
        }
    for split, questions in (("held_out", args.questions), ("train_split", args.train_questions)):
        if not questions:
            continue
        base = evaluate(args.base, questions, args.rows)
        results[f"base_{split}"] = {k: v for k, v in base.items() if k != "correct"}
        for preset, run in results["runs"].items():
            ev = evaluate(run["folder"], questions, args.rows)
            gain, se = paired(base["correct"], ev["correct"])
            run[split] = {**{k: v for k, v in ev.items() if k != "correct"}, "gain": gain, "paired_se": se}
            print(f"{split:11s} {preset:10s} {100 * ev['accuracy']:5.1f}%  {100 * gain:+5.1f} +- {100 * se:.1f}",
                  flush=True)  # fmt: skip
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(json.dumps({p: {k: r.get(k) for k in ("steps", "cpu_minutes", "frac_reward_zero_std")}
                      for p, r in results["runs"].items()}, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
