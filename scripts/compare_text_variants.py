"""Compare the LLM GRPO variants on the shipped arithmetic LM at the same budget of generated tokens.

Every variant is a `flowrl train-text` preset (`flowrl/text/presets/<name>.yaml`: the core loss plus the hooks of
`flowrl/text/hooks.py` it needs) and trains the same base model (`assets/arith_lm`) with the same sampling (4 prompts
x 8 completions per step, at most 8 new tokens each), learning rate (1e-5) and seed for the same number of steps, so
each run generates at most ``steps x 4 x 8 x 8`` tokens (Knapsack RL spends the same completions per step, split
unevenly). The tokens actually generated are counted from the run's metrics. Schedules that run over a preset's
``kl_ramp_steps`` / ``ramp_steps`` are stretched to the run's length. KDRL's teacher and SALSA's second soup model are
``--teacher`` (default: the shipped model itself). The script writes a table (held-out greedy accuracy before /
after, mean completion length, generated tokens, seconds of training), results.json and a plot to ``--out``, and
replaces the section ``## Text branch: LLM GRPO variants`` of ``--markdown`` (e.g. docs/benchmarks.md) if given.

    python scripts/compare_text_variants.py --tokens 76800 --teacher runs/<a DAPO run>/final \\
        --markdown docs/benchmarks.md --plot docs/compare_text_variants.png
    python scripts/compare_text_variants.py --variants grpo tp_grpo mo_grpo --tokens 20000 --out runs/cmp
    python scripts/compare_text_variants.py --task chain --tokens 76800 --out runs/cmp_chain

``--task chain`` runs the same presets on the chain task (issue #19: `assets/chain_lm`, completions of at most 24
tokens, lr 3e-5 as the chain presets); every run's held-out greedy hits are kept per problem, so the table gives
standard errors and each variant's paired difference against the first one (grpo).

Wall times are measured one run after the other on the same machine (one torch thread); compare them as ratios.
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
import torch  # noqa: E402

from flowrl.text.cli import LLM_PRESETS, load_config  # noqa: E402
from flowrl.text.train import train  # noqa: E402

PROMPTS, GROUP = 4, 8
# task -> (model folder, train file, test file, new tokens per completion, prompt tokens, lr)
TASKS = {
    "arith": ("assets/arith_lm", "assets/arith_lm/train.jsonl", "assets/arith_lm/test.jsonl", 8, 48, 1e-5),
    "chain": ("assets/chain_lm", "assets/chain_lm/train.jsonl", "assets/chain_lm/test.jsonl", 24, 16, 3e-5),
}
SECTION = "## Text branch: LLM GRPO variants"


def overrides_for(
    name: str, *, steps: int, out: Path, seed: int, test_size: int, teacher: str, task: str = "arith"
) -> list[str]:
    """The run's common settings, the teacher / soup paths, and schedules stretched to `steps`."""
    model, train_file, test_file, new_tokens, prompt_tokens, lr = TASKS[task]
    common = [
        f"model.path={model}",
        f"task.train_file={train_file}",
        f"task.test_file={test_file}",
        f"generation.max_prompt_length={prompt_tokens}",
        f"eval.max_new_tokens={new_tokens}",
        f"train.steps={steps}",
        "train.time_limit_minutes=0",
        f"train.seed={seed}",
        f"train.prompts_per_step={PROMPTS}",
        f"generation.group_size={GROUP}",
        f"generation.max_new_tokens={new_tokens}",
        f"optim.lr={lr}",
        "eval.every_minutes=0",
        f"task.test_size={test_size}",
        f"run.root={out}",
        f"run.name={name}",
        "run.tensorboard=false",
        "run.log_every=1",
    ]
    cfg = load_config(preset=name, overrides=common)
    if cfg.hooks.regularizer == "teacher_kl":
        common.append(f"hooks.teacher_path={teacher}")
    if cfg.hooks.reference_soup:
        common.append(f"hooks.reference_soup=[{model},{teacher}]")
    if cfg.hooks.kl_ramp_steps > 0:
        common.append(f"hooks.kl_ramp_steps={steps}")
    if "ramp_steps" in cfg.hooks.token_mask_kwargs:
        kwargs = {**cfg.hooks.token_mask_kwargs, "ramp_steps": steps}
        common.append("hooks.token_mask_kwargs={" + ", ".join(f"{k}: {v}" for k, v in kwargs.items()) + "}")
    return common


def run_one(name: str, *, steps: int, out: Path, seed: int, test_size: int, teacher: str, task: str = "arith") -> dict:
    overrides = overrides_for(name, steps=steps, out=out, seed=seed, test_size=test_size, teacher=teacher, task=task)
    cfg = load_config(preset=name, overrides=overrides)
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
        "hits": held_out_hits(result.run_dir / "final", task=task, test_size=test_size) if task == "chain" else None,
    }


def held_out_hits(folder: Path, *, task: str, test_size: int) -> list[float]:
    """Per-problem greedy exact match of a run's final model (for standard errors and paired differences)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from flowrl.text.data import load_jsonl
    from flowrl.text.evaluate import greedy_hits

    model_path, _, test_file, new_tokens, prompt_tokens, _ = TASKS[task]
    model, tok = AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    rows = load_jsonl(test_file)[:test_size]
    return greedy_hits(
        model, tok, [str(r["prompt"]) for r in rows], [str(r["answer"]) for r in rows], max_new_tokens=new_tokens,
        max_prompt_length=prompt_tokens,
    )  # fmt: skip


def chain_table(results: list[dict], *, steps: int, budget: int, test_size: int) -> str:
    """The chain task's table: accuracy +- s.e., paired difference against the first variant +- paired s.e."""
    from flowrl.text.pass_at_k import mean_se, paired_diff

    ref = torch.tensor(results[0]["hits"])
    lines = [
        f"`python scripts/compare_text_variants.py --task chain --tokens {budget} --test-size {test_size}`: every "
        f"variant trains assets/chain_lm for {steps} steps of {PROMPTS} prompts x {GROUP} completions (<= 24 tokens "
        f"each), lr 3e-5, seed 0; greedy exact match on the first {test_size} held-out chain problems (+- standard "
        f"error; paired difference against {results[0]['variant']} on the same problems); {platform.machine()} CPU, "
        "one torch thread.",
        "",
        f"| variant | held-out greedy | vs {results[0]['variant']} (paired s.e.) | mean completion length | generated "
        "tokens | train s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        hits = torch.tensor(r["hits"])
        acc, diff = mean_se(hits), paired_diff(ref, hits)
        lines.append(
            f"| {r['variant']} | {100 * acc.mean:.1f} +- {100 * acc.se:.1f} | {100 * diff.mean:+.1f} +- "
            f"{100 * diff.se:.1f} | {r['mean_length']:.2f} | {int(r['tokens'])} | {r['train_seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def table(results: list[dict], *, steps: int, budget: int, test_size: int, teacher: str) -> str:
    lines = [
        f"`python scripts/compare_text_variants.py --tokens {budget} --test-size {test_size} --teacher {teacher}`: "
        f"every variant trains assets/arith_lm for {steps} steps of {PROMPTS} prompts x {GROUP} completions "
        f"(<= {budget} generated tokens each), lr 1e-5, seed 0; greedy exact match on the first {test_size} held-out "
        f"problems; {platform.machine()} CPU, one torch thread.",
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
    base = results[0]["base_accuracy"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4.5))
    a.bar(names, acc)
    if base is not None:
        a.axhline(100 * base, color="gray", linestyle="--", linewidth=1, label="base model")
        a.legend(loc="upper right")
        a.set_ylim(100 * base - 5, max(acc) + 3)
    a.set_ylabel("held-out accuracy (%)")
    a.tick_params(axis="x", rotation=70)
    b.scatter(secs, acc)
    for n, x, y in zip(names, secs, acc, strict=True):
        b.annotate(n, (x, y), fontsize=7)
    b.set_xlabel("training seconds (one thread)")
    b.set_ylabel("held-out accuracy (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def replace_section(path: Path, text: str, *, section: str = SECTION) -> None:
    """Replace the `section` heading's section of a markdown file (up to the next ``## `` heading), or append it."""
    body = path.read_text() if path.is_file() else ""
    block = f"{section} (scripts/compare_text_variants.py)\n\n{text}"
    start = body.find(section + " (")
    if start < 0:
        path.write_text(body.rstrip("\n") + "\n\n" + block)
        return
    end = body.find("\n## ", start + len(section))
    path.write_text(body[:start] + block + (body[end:] if end >= 0 else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="*", default=["grpo", "dapo", *LLM_PRESETS], help="preset names")
    parser.add_argument("--task", choices=sorted(TASKS), default="arith", help="arith (assets/arith_lm) or chain")
    parser.add_argument("--tokens", type=int, default=76_800, help="generated-token budget per variant (upper bound)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-size", type=int, default=1000, help="held-out problems evaluated")
    parser.add_argument("--teacher", default="assets/arith_lm", help="KDRL teacher and SALSA's second soup model")
    parser.add_argument("--out", type=Path, default=Path("runs/compare_text_variants"))
    parser.add_argument("--markdown", type=Path, help="replace the text-variant section of this markdown file")
    parser.add_argument("--plot", type=Path, help="also save the plot here (e.g. docs/compare_text_variants.png)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    per_step = PROMPTS * GROUP * TASKS[args.task][3]
    if args.task == "chain" and args.teacher == "assets/arith_lm":
        args.teacher = "assets/chain_lm"  # KDRL's teacher and SALSA's soup partner: the chain model itself
    steps = max(1, args.tokens // per_step)
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for v in args.variants:
        results.append(
            run_one(
                v, steps=steps, out=args.out, seed=args.seed, test_size=args.test_size, teacher=args.teacher,
                task=args.task,
            )
        )  # fmt: skip
        (args.out / "results.json").write_text(json.dumps(results, indent=2))  # partial results survive a crash
    if args.task == "chain":
        text = chain_table(results, steps=steps, budget=steps * per_step, test_size=args.test_size)
    else:
        text = table(results, steps=steps, budget=steps * per_step, test_size=args.test_size, teacher=args.teacher)
    (args.out / "table.md").write_text(text)
    plot(results, args.out / "compare_text_variants.png")
    if args.plot is not None:
        plot(results, args.plot)
    if args.markdown is not None:
        replace_section(
            args.markdown, text, section=SECTION if args.task == "arith" else SECTION + " on the chain task"
        )
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
