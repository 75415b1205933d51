"""TRL `GRPOTrainer` against `flowrl train-text`: same model, task, reward, group, batch, generation settings, loss
type and number of steps; seconds per step (median), peak memory, held-out accuracy after training.

Each framework runs in its own subprocess (peak RSS is per process), one after the other, with one torch thread:

    nice -n 19 python scripts/bench_text_vs_trl.py --steps 400 --out docs/text_benchmarks.md

TRL settings follow text_proto.md section 5 (what TRL needs on CPU to be fair): bf16=False,
gradient_checkpointing=False, constant LR, no warmup, beta 0, logging to nowhere. Step time for both is the time
between the ends of consecutive optimizer steps (rollout, reward, loss, backward, optimizer and each framework's
bookkeeping included; evaluation excluded), as process CPU time and as wall time. The default loss is `grpo` because
there the two compute the same maths (flowrl's `dapo` also drops zero-variance groups from the token count, TRL's
does not). TRL is a dev / bench dependency only (`pip install -e '.[bench-trl]'`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _held_out(model, tokenizer, test_file: Path, n: int) -> float:
    from flowrl.text.data import load_jsonl
    from flowrl.text.evaluate import greedy_accuracy

    rows = load_jsonl(test_file)[:n]
    return greedy_accuracy(
        model,
        tokenizer,
        [r["prompt"] for r in rows],
        [r["answer"] for r in rows],
        max_new_tokens=8,
        max_prompt_length=48,
    )


def run_trl(args) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from flowrl.text.data import load_jsonl

    model_dir = Path(args.model)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    eos = tokenizer.eos_token_id
    rows = load_jsonl(model_dir / "train.jsonl")
    dataset = Dataset.from_dict({"prompt": [r["prompt"] for r in rows], "answer": [r["answer"] for r in rows]})

    def exact_match(completions, completion_ids, answer, **kwargs):
        out = []
        for ids, ans in zip(completion_ids, answer, strict=True):
            done = eos in ids
            text = tokenizer.decode(ids[: ids.index(eos)] if done else ids, skip_special_tokens=True)
            out.append(float(done and text.strip() == ans))
        return out

    ends: list[float] = []
    cpu_ends: list[float] = []

    class Timer(TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            ends.append(time.perf_counter())
            cpu_ends.append(time.process_time())

    with tempfile.TemporaryDirectory() as tmp:
        config = GRPOConfig(
            output_dir=tmp,
            per_device_train_batch_size=args.prompts * args.group,
            num_generations=args.group,
            max_completion_length=8,
            max_steps=args.steps,
            learning_rate=args.lr,
            lr_scheduler_type="constant",
            warmup_steps=0,
            weight_decay=0.0,
            max_grad_norm=1.0,
            beta=0.0,
            loss_type=args.loss,
            epsilon=0.2,
            epsilon_high=0.28 if args.loss == "dapo" else 0.2,
            scale_rewards="group",
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            use_cpu=True,
            bf16=False,
            fp16=False,
            gradient_checkpointing=False,
            logging_steps=1,
            report_to="none",
            save_strategy="no",
            disable_tqdm=True,
            seed=args.seed,
            dataloader_num_workers=0,
            model_init_kwargs={"dtype": torch.float32},
        )
        trainer = GRPOTrainer(
            model=str(model_dir),
            processing_class=tokenizer,
            reward_funcs=[exact_match],
            args=config,
            train_dataset=dataset,
            callbacks=[Timer()],
        )
        base = _held_out(trainer.model, tokenizer, model_dir / "test.jsonl", args.test_size)
        trainer.train()
        final = _held_out(trainer.model, tokenizer, model_dir / "test.jsonl", args.test_size)
    return {
        "step_times": [b - a for a, b in zip(ends, ends[1:], strict=False)],
        "step_cpu_times": [b - a for a, b in zip(cpu_ends, cpu_ends[1:], strict=False)],
        "base": base,
        "final": final,
    }


def run_flowrl(args, *, plain: bool = False) -> dict:
    """flowrl train-text; `plain` turns off its two savings (shared prefill, skipping zero-variance groups)."""
    from flowrl.runtime.metrics import read_metrics
    from flowrl.text.cli import load_config
    from flowrl.text.train import train

    ablation = ["generation.prefill_once=false", "train.skip_zero_advantage=false"] if plain else []

    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(
            preset=args.loss,
            overrides=[
                f"model.path={args.model}",
                f"task.train_file={Path(args.model) / 'train.jsonl'}",
                f"task.test_file={Path(args.model) / 'test.jsonl'}",
                f"task.test_size={args.test_size}",
                f"train.steps={args.steps}",
                f"train.prompts_per_step={args.prompts}",
                f"train.seed={args.seed}",
                "train.time_limit_minutes=0",
                f"generation.group_size={args.group}",
                "generation.max_new_tokens=8",
                f"optim.lr={args.lr}",
                "eval.every_minutes=0",
                "eval.every_steps=0",
                "run.log_every=1",
                f"run.checkpoint_every={args.steps}",
                "run.tensorboard=false",
                f"run.root={tmp}",
                *ablation,
            ],
        )
        result = train(cfg)
        records = [r for r in read_metrics(result.run_dir / "metrics.jsonl") if "step_time" in r]
    ends = [r["wall_time"] for r in records[:-1]]  # the last line also holds the final evaluation
    cpu_ends = [r["process_cpu_time"] for r in records[:-1]]
    return {
        "step_times": [b - a for a, b in zip(ends, ends[1:], strict=False)],
        "step_cpu_times": [b - a for a, b in zip(cpu_ends, cpu_ends[1:], strict=False)],
        "base": result.base_accuracy,
        "final": result.final_accuracy,
        "time_generate": statistics.median(r["time_generate"] for r in records),
        "time_train": statistics.median(r["time_train"] for r in records),
    }


def child(args) -> int:
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    load = os.getloadavg()[0]
    if args.framework == "trl":
        out = run_trl(args)
    else:
        out = run_flowrl(args, plain=args.framework == "flowrl_plain")
    out["load_at_start"] = load
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(args.json).write_text(json.dumps(out))
    return 0


NAMES = {
    "trl": "TRL 1.16 GRPOTrainer",
    "flowrl": "flowrl train-text",
    "flowrl_plain": "flowrl, prefill per sample + no group skipping",
}


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(statistics.median(r[key]) for r in runs)


def table(results: dict[str, list[dict]], args) -> str:
    """Markdown: per framework the median over repeats of each run's median step time (CPU and wall), peak RSS and
    every run's held-out accuracy."""
    cpu = {k: _median(runs, "step_cpu_times") for k, runs in results.items()}
    wall = {k: _median(runs, "step_times") for k, runs in results.items()}
    lines = [
        "# flowrl train-text vs TRL GRPOTrainer",
        "",
        f"Written by `scripts/bench_text_vs_trl.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        f"the model `{os.path.relpath(args.model, REPO)}`, exact-match reward, {args.prompts} prompts x {args.group} "
        f"completions per step, max 8 new tokens, T=1, top-k off, loss `{args.loss}`, beta 0, lr {args.lr} "
        f"(constant), {args.steps} steps, seed {args.seed}, one torch thread, CPU, held-out = greedy exact match on "
        f"{args.test_size} test problems. Step time = time between the ends of consecutive optimizer steps, as CPU "
        "time of the process (what a busy machine does not inflate) and as wall time; the table gives the median "
        f"over {args.repeats} run(s) of each run's median (runs interleaved: TRL, flowrl, ablation, then the "
        "reverse order).",
        "",
        "| framework | CPU s/step | step rate vs TRL (CPU) | wall s/step | step rate vs TRL (wall) | peak RSS MB | "
        "held-out before -> after (each run) | wall s/step of each run (1-min load average at its start) |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for key, runs in results.items():
        acc = ", ".join(f"{100 * r['base']:.1f}% -> {100 * r['final']:.1f}%" for r in runs)
        each = ", ".join(f"{statistics.median(r['step_times']):.4f} ({r['load_at_start']:.1f})" for r in runs)
        lines.append(
            f"| {NAMES[key]} | {cpu[key]:.4f} | {cpu['trl'] / cpu[key]:.2f}x | {wall[key]:.4f} | "
            f"{wall['trl'] / wall[key]:.2f}x | {max(r['peak_rss_mb'] for r in runs):.0f} | {acc} | {each} |"
        )
    own = results.get("flowrl", [])
    if own:
        gen = statistics.median(r["time_generate"] for r in own)
        train = statistics.median(r["time_train"] for r in own)
        lines += [
            "",
            f"flowrl's own split (median per step, wall): rollout + reward {gen:.4f} s, update {train:.4f} s.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "assets" / "arith_lm"))
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--loss", default="grpo", choices=["grpo", "dapo", "bnpo", "dr_grpo"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "text_benchmarks.md")
    parser.add_argument("--repeats", type=int, default=2, help="runs per framework, in alternating order")
    parser.add_argument("--no-ablation", action="store_true", help="skip the flowrl run without its two savings")
    parser.add_argument("--framework", choices=list(NAMES), help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.framework:
        return child(args)
    order = ["trl", "flowrl"] + ([] if args.no_ablation else ["flowrl_plain"])
    results: dict[str, list[dict]] = {k: [] for k in order}
    child_argv = list(argv if argv is not None else sys.argv[1:])
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            for fw in order if rep % 2 == 0 else order[::-1]:
                path = Path(tmp) / f"{fw}_{rep}.json"
                cmd = [sys.executable, __file__, "--framework", fw, "--json", str(path), *child_argv]
                env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
                subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
                results[fw].append(json.loads(path.read_text()))
                last = results[fw][-1]
                print(
                    f"{fw} run {rep}: median {statistics.median(last['step_cpu_times']):.4f} CPU s/step, "
                    f"{statistics.median(last['step_times']):.4f} wall s/step",
                    flush=True,
                )
    text = table(results, args)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
