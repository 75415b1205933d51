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


def parse_method(item: str) -> tuple[str, str, list[str]]:
    """``preset`` or ``label=preset:key=value,key=value`` -> (label, preset, overrides)."""
    if "=" not in item.split(":")[0]:
        return item, item, []
    label, rest = item.split("=", 1)
    preset, _, ov = rest.partition(":")
    return label, preset, [o for o in ov.split(",") if o]


def group_diversity(
    folder: Path, rows: list[dict], *, seed: int, latr: dict[str, list[str]], step: int = 0
) -> dict[str, dict]:
    """Groups of 8 on the same prompts from plain sampling and from LATR (chain_latr plus each entry's overrides,
    training step `step`): distinct completions per group, the fraction of groups holding a correct completion, the
    mean reward, and for LATR the tree's forwards (prefixes evaluated)."""
    from flowrl.text.collect import latr_params
    from flowrl.text.evaluate import completion_text, eos_token_ids, exact_match
    from flowrl.text.latr import distinct_per_group, latr_groups
    from flowrl.text.prompts import encode_prompts
    from flowrl.text.rollout import sample_groups

    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    eos = eos_token_ids(model, tok)
    out = {}
    for kind in ["sample", *latr]:
        if kind != "sample":
            params = latr_params(load_config(preset="chain_latr", overrides=latr[kind]))
        torch.manual_seed(seed)
        distinct, solved, reward, forwards, tokens = [], [], [], 0, 0
        for s in range(0, len(rows), 25):
            chunk = rows[s : s + 25]
            ids = encode_prompts(tok, [str(r["prompt"]) for r in chunk], max_prompt_length=16)
            if kind == "sample":
                ro = sample_groups(model, tok, ids, group_size=K, sampling=SamplingConfig(24), eos_ids=eos)
            else:
                lr = latr_groups(model, tok, ids, group_size=K, sampling=SamplingConfig(24), eos_ids=eos,
                                 params=params, step=step)  # fmt: skip
                ro, forwards = lr.rollout, forwards + lr.tree.forwards
            comp = (ro.completion_ids * ro.completion_mask).tolist()
            lengths = ro.completion_mask.sum(-1).tolist()
            tokens += sum(lengths)
            hits = []
            for r, (c, n) in enumerate(zip(comp, lengths, strict=True)):
                text, done = completion_text(tok, c[:n], eos_ids=eos)
                hits.append(exact_match(text, str(chunk[r // K]["answer"]), terminated=done))
            h = torch.tensor(hits).view(-1, K)
            distinct += [distinct_per_group(comp[g * K : (g + 1) * K], [0] * K) for g in range(len(chunk))]
            solved += (h.sum(-1) > 0).double().tolist()
            reward += h.mean(-1).double().tolist()
        out[kind] = {
            "distinct_per_group": mean_se(torch.tensor(distinct))._asdict(),
            "group_solved": mean_se(torch.tensor(solved))._asdict(),
            "mean_reward": mean_se(torch.tensor(reward))._asdict(),
            "generated_tokens": tokens,
        }
        if kind != "sample":
            out[kind]["tree_forwards"] = forwards
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--methods",
        nargs="+",
        default=["chain_grpo", "chain_latr", "chain_rgr"],
        help="presets, or label=preset:key=value,key=value (the first is the reference of the paired differences)",
    )
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument(
        "--token-budget", type=int, default=0,
        help="stop every method at this many generated tokens (train.max_generated_tokens; ReST-GRPO's assembly "
        "sampling counts) instead of at --steps",
    )  # fmt: skip
    ap.add_argument("--test-size", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/bench_chain"))
    ap.add_argument("--diversity", type=int, default=200, help="held-out prompts of the group-diversity table")
    args = ap.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = load_jsonl("assets/chain_lm/test.jsonl")[: args.test_size]
    results: dict[str, dict] = {}
    if args.diversity:
        latr = {label: ov for label, preset, ov in map(parse_method, args.methods) if preset == "chain_latr"}
        results["diversity_base"] = group_diversity(
            Path("assets/chain_lm"), rows[: args.diversity], seed=args.seed, latr=latr
        )
        print(json.dumps(results["diversity_base"], indent=1), flush=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    base = evaluate(Path("assets/chain_lm"), rows, seed=args.seed)
    results["base"] = {k: mean_se(v)._asdict() for k, v in base.items()}
    per_problem = {"base": base}
    first = parse_method(args.methods[0])[0]
    for label, preset, extra in map(parse_method, args.methods):
        name = label
        cfg = load_config(
            preset=preset,
            overrides=extra
            + [
                f"train.steps={100_000 if args.token_budget else args.steps}", "train.time_limit_minutes=0",
                f"train.max_generated_tokens={args.token_budget}", f"train.seed={args.seed}",
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
            generated_tokens=trained[-1]["generated_tokens"],  # rollouts + ReST-GRPO's assembly sampling
            assembly_tokens=sum(r.get("rest/assembly_tokens", 0) for r in trained),
            assembly_minutes=sum(r.get("rest/assembly_seconds", 0) for r in trained) / 60,
            frac_reward_zero_std=statistics.mean(r["frac_reward_zero_std"] for r in trained),
            distinct_per_group=statistics.mean(r["completions/distinct_per_group"] for r in trained),
            train_reward=statistics.mean(r["reward"] for r in trained),
        )
        if name != first:
            ref = per_problem[first]
            results[name]["vs_first"] = {k: paired_diff(ref[k], ev[k])._asdict() for k in ev}
        (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    cols = ["greedy", "pass@1", f"pass@{K}"]
    print(f"| model | {' | '.join(cols)} | steps | s/step | tokens | distinct/group |")
    print("|---|" + "---:|" * (len(cols) + 4))
    for name, r in results.items():
        if name.startswith("diversity"):
            continue
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
