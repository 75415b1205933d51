"""Compare LLM GRPO variants on the shipped arithmetic LM at the same budget of generated tokens.

Every variant trains from the same base model (`assets/arith_lm`) with the DAPO preset's sampling (4 prompts x 8
completions per step, at most 8 new tokens each) for the same number of steps, so each run may generate at most
``steps x 4 x 8 x 8`` tokens; the tokens actually generated are counted from the run's metrics and reported. Each
variant is selected through the text trainer as ``loss.variant=<name>`` (a `flowrl.grpo.VARIANTS` name or
``flowrl.grpo.variants_llm:<name>``), with its factory defaults and no KL; constant-reward groups are forwarded for
the variants whose advantage is non-zero there (so grpo_d and kdrl reduce to their base
loss until the trainer has the schedule and teacher hooks listed in docs/papers_llm.md). The script writes a table
(held-out greedy accuracy before / after, mean completion length, generated tokens, seconds of training) and a plot
to ``--out`` (and appends the table to ``--markdown`` if given, e.g. docs/benchmarks.md).

    python scripts/compare_text_variants.py --tokens 200000                       # grpo, dapo and every LLM variant
    python scripts/compare_text_variants.py --variants grpo ngrpo dcpo --tokens 50000 --out runs/cmp

Wall times are measured one run after the other on the same machine; compare them as ratios.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from flowrl.grpo.variants_llm import LLM_VARIANTS  # noqa: E402
from flowrl.text.train import load_config, train  # noqa: E402

PROMPTS, GROUP, NEW_TOKENS = 4, 8, 8
# advantages that are non-zero on groups whose rewards are all equal (NGRPO's virtual sample, DCPO's and SPO's history,
# RiskPO's papers): the trainer must forward those groups instead of skipping them as signal-free
SIGNAL_ON_CONSTANT_GROUPS = {"ngrpo", "dcpo", "spo", "riskpo"}


def variant_name(name: str) -> str:
    """Core names pass through; LLM variants are addressed by module path until merged into VARIANTS."""
    return f"flowrl.grpo.variants_llm:{name}" if name in LLM_VARIANTS else name


def run_one(name: str, *, steps: int, out: Path, seed: int, test_size: int) -> dict:
    cfg = load_config(
        preset="dapo",
        overrides=[
            f"loss.variant={variant_name(name)}",
            f"train.steps={steps}",
            "train.time_limit_minutes=0",
            f"train.seed={seed}",
            f"train.prompts_per_step={PROMPTS}",
            f"generation.group_size={GROUP}",
            f"generation.max_new_tokens={NEW_TOKENS}",
            "eval.every_minutes=0",
            f"task.test_size={test_size}",
            f"run.root={out}",
            f"run.name={name}",
            "run.tensorboard=false",
            "run.log_every=1",
            f"train.skip_zero_variance={str(name not in SIGNAL_ON_CONSTANT_GROUPS).lower()}",
        ],
    )
    t0 = time.perf_counter()
    result = train(cfg)
    wall = time.perf_counter() - t0
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in rows if "reward" in r]
    lengths = [r["completions/mean_length"] for r in trained]
    return {
        "variant": name,
        "base_accuracy": result.base_accuracy,
        "accuracy": result.final_accuracy,
        "mean_length": sum(lengths) / len(lengths) if lengths else math.nan,
        "tokens": sum(r.get("num_tokens", 0.0) for r in trained),
        "train_seconds": 60 * result.minutes,
        "wall_seconds": wall,
        "steps": result.steps,
    }


def table(results: list[dict], *, steps: int, budget: int) -> str:
    lines = [
        f"LLM GRPO variants on assets/arith_lm, {steps} steps of {PROMPTS} prompts x {GROUP} completions "
        f"(<= {budget} generated tokens each), {platform.machine()} CPU, one torch thread.",
        "",
        "| variant | held-out acc. before | after | mean completion length | generated tokens | train s |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        acc = "n/a" if r["accuracy"] is None else f"{100 * r['accuracy']:.1f}%"
        base = "n/a" if r["base_accuracy"] is None else f"{100 * r['base_accuracy']:.1f}%"
        lines.append(
            f"| {r['variant']} | {base} | {acc} | {r['mean_length']:.2f} | {int(r['tokens'])} | "
            f"{r['train_seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def plot(results: list[dict], path: Path) -> None:
    names = [r["variant"] for r in results]
    acc = [100 * (r["accuracy"] or 0.0) for r in results]
    secs = [r["train_seconds"] for r in results]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.bar(names, acc)
    a.set_ylabel("held-out accuracy (%)")
    a.tick_params(axis="x", rotation=60)
    b.scatter(secs, acc)
    for n, x, y in zip(names, secs, acc, strict=True):
        b.annotate(n, (x, y), fontsize=7)
    b.set_xlabel("training seconds")
    b.set_ylabel("held-out accuracy (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="*", default=["grpo", "dapo", *LLM_VARIANTS])
    parser.add_argument("--tokens", type=int, default=200_000, help="generated-token budget per variant (upper bound)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-size", type=int, default=1000, help="held-out problems evaluated")
    parser.add_argument("--out", type=Path, default=Path("runs/compare_text_variants"))
    parser.add_argument("--markdown", type=Path, help="append the table to this markdown file")
    args = parser.parse_args(argv)
    per_step = PROMPTS * GROUP * NEW_TOKENS
    steps = max(1, args.tokens // per_step)
    args.out.mkdir(parents=True, exist_ok=True)
    results = [run_one(v, steps=steps, out=args.out, seed=args.seed, test_size=args.test_size) for v in args.variants]
    text = table(results, steps=steps, budget=steps * per_step)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    (args.out / "table.md").write_text(text)
    plot(results, args.out / "compare_text_variants.png")
    if args.markdown is not None:
        with args.markdown.open("a") as f:
            f.write("\n## LLM GRPO variants (scripts/compare_text_variants.py)\n\n" + text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
