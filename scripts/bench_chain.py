"""Compare the chain-task methods against plain GRPO at the same number of steps (the same completions and token
budget per step): pass@1 (greedy) and sampled pass@1 / pass@8 before and after on the held-out chain problems, with
standard errors, paired differences against GRPO, time per step, generated tokens, and distinct completions per group.

Each method is a `flowrl train-text` preset (chain_grpo, chain_latr, chain_rgr) trained from `assets/chain_lm` with the
same seed, steps, group (4 prompts x 8 completions of at most 24 tokens) and learning rate; the base model is
evaluated once. Results go to ``--out``/results.json and a markdown table on stdout.

    OMP_NUM_THREADS=1 nice -n 19 python scripts/bench_chain.py --steps 150 --test-size 1000 --out runs/bench_chain

Times are wall seconds on whatever machine runs it, one torch thread; compare them as ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from flowrl.text.cli import load_config
from flowrl.text.data import load_jsonl
from flowrl.text.evaluate import greedy_hits
from flowrl.text.pass_at_k import correct_counts, mean_se, paired_diff, pass_at
from flowrl.text.rollout import SamplingConfig
from flowrl.text.train import train

K = 8


def evaluate(folder: Path, rows: list[dict], *, seed: int) -> dict[str, torch.Tensor]:
    """Per-problem greedy hit `(N,)`, sampled pass@1 and pass@8 values `(N,)` of the model in `folder`."""
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    prompts, answers = [str(r["prompt"]) for r in rows], [str(r["answer"]) for r in rows]
    greedy = torch.tensor(greedy_hits(model, tok, prompts, answers, max_new_tokens=24, max_prompt_length=16))
    torch.manual_seed(seed)
    counts = correct_counts(model, tok, prompts, answers, k=K, sampling=SamplingConfig(24), max_prompt_length=16)
    p1, pk = pass_at(counts, K)
    return {"greedy": greedy.double(), "pass@1": p1, f"pass@{K}": pk}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=["chain_grpo", "chain_latr", "chain_rgr"])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--test-size", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/bench_chain"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = load_jsonl("assets/chain_lm/test.jsonl")[: args.test_size]
    results: dict[str, dict] = {}
    base = evaluate(Path("assets/chain_lm"), rows, seed=args.seed)
    results["base"] = {k: mean_se(v)._asdict() for k, v in base.items()}
    per_problem = {"base": base}
    for name in args.methods:
        cfg = load_config(
            preset=name,
            overrides=[
                f"train.steps={args.steps}", "train.time_limit_minutes=0", f"train.seed={args.seed}",
                "eval.every_minutes=0", "task.test_size=200", f"run.root={args.out}", f"run.name={name}",
                "run.tensorboard=false", "run.log_every=1",
            ],
        )  # fmt: skip
        t0 = time.perf_counter()
        result = train(cfg)
        wall = time.perf_counter() - t0
        logged = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
        trained = [r for r in logged if "reward" in r]
        ev = evaluate(result.run_dir / "final", rows, seed=args.seed)
        per_problem[name] = ev
        results[name] = {k: mean_se(v)._asdict() for k, v in ev.items()}
        results[name].update(
            steps=result.steps,
            train_minutes=result.minutes,
            wall_minutes=wall / 60,
            median_step_seconds=statistics.median(r["step_time"] for r in trained),
            generated_tokens=sum(r["num_tokens"] for r in trained),
            distinct_per_group=statistics.mean(r["completions/distinct_per_group"] for r in trained),
            train_reward=statistics.mean(r["reward"] for r in trained),
        )
        if name != args.methods[0]:
            ref = per_problem[args.methods[0]]
            results[name]["vs_first"] = {k: paired_diff(ref[k], ev[k])._asdict() for k in ev}
        (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    cols = ["greedy", "pass@1", f"pass@{K}"]
    print(f"| model | {' | '.join(cols)} | steps | s/step | tokens | distinct/group |")
    print("|---|" + "---:|" * (len(cols) + 4))
    for name, r in results.items():
        cells = [f"{100 * r[c]['mean']:.1f} +- {100 * r[c]['se']:.1f}" for c in cols]
        extra = (
            ["", "", "", ""]
            if name == "base"
            else [
                str(r["steps"]),
                f"{r['median_step_seconds']:.2f}",
                f"{r['generated_tokens']:.0f}",
                f"{r['distinct_per_group']:.2f}",
            ]
        )
        print(f"| {name} | {' | '.join(cells)} | {' | '.join(extra)} |")


if __name__ == "__main__":
    main()
