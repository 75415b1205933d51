"""Scored samples per CPU-minute of a whole default `flowrl train` iteration: the pixel ShapeWorld v1 vs the latent v2.

Both models run in ONE invocation, alternating (old, new, old, new, ...) so that machine noise hits both alike. The
old model and its trainer come from a git worktree of an earlier commit (`--old-ref`, default: the last commit with
the pixel model), started as ``python -m flowrl.train.image`` inside that worktree so its own code runs; the new
one from this checkout. A run is `--iterations` iterations of the preset with evaluation reduced to the minimum;
the first iteration is a warm-up and is dropped. Samples per iteration = prompts_per_iteration x group_size (scored
leaves of a Flow-GRPO chain preset); time = `time_iteration` from metrics.jsonl (rollout + reward + update).

    HF_HUB_OFFLINE=1 python scripts/bench_samples_per_minute.py --threads 1 --repeats 2

Prints a table and writes `<out>/bench_samples_per_minute.json`.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
OLD_REF = "a07fa77"  # the last commit whose default model is the pixel-space ShapeWorld v1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-ref", default=OLD_REF, help="git ref of the pixel-model checkout")
    parser.add_argument("--old-preset", default="shapes_flow_grpo")
    parser.add_argument("--new-preset", default="shapes_flow_grpo")
    parser.add_argument("--iterations", type=int, default=4, help="per run; the first is a warm-up")
    parser.add_argument("--repeats", type=int, default=2, help="runs per model, alternating")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="runs/bench_samples_per_minute")
    return parser.parse_args(argv)


def worktree(ref: str) -> Path:
    """A detached worktree of `ref` under the system temp folder (created once, reused)."""
    path = Path(tempfile.gettempdir()) / f"flowrl_worktree_{ref}"
    if not (path / "flowrl").is_dir():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--force", str(path), ref], check=True)
    return path


def run_once(checkout: Path, preset: str, args: argparse.Namespace, root: Path, extra: list[str]) -> dict:
    """One short training run in `checkout`; returns its per-iteration seconds and samples per iteration."""
    command = [
        sys.executable,
        "-m",
        "flowrl.train.image",
        "--preset",
        preset,
        f"train.iterations={args.iterations}",
        f"train.threads={args.threads}",
        "train.time_limit_minutes=0",
        f"run.root={root}",
        "eval.at_start=false",
        f"eval.every={args.iterations}",
        "eval.prompts_per_family=1",
        "eval.seeds=[0]",
        *extra,
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(checkout)}
    subprocess.run(command, cwd=checkout, env=env, check=True, stdout=subprocess.DEVNULL)
    run_dir = max(root.iterdir(), key=lambda p: p.stat().st_mtime)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    seconds = [r["time_iteration"] for r in records if "time_iteration" in r][1:]  # drop the warm-up
    samples = config["train"]["prompts_per_iteration"] * config["method"]["kwargs"]["group_size"]
    return {"seconds": seconds, "samples_per_iteration": samples, "run_dir": str(run_dir)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = {
        "v1 pixel (old)": (worktree(args.old_ref), args.old_preset, []),
        "v2 latent (new)": (ROOT, args.new_preset, ["eval.train_prompts_per_family=0"]),
    }
    results: dict[str, list[dict]] = {name: [] for name in models}
    for repeat in range(args.repeats):
        for name, (checkout, preset, extra) in models.items():
            with tempfile.TemporaryDirectory() as tmp:
                results[name].append(run_once(checkout, preset, args, Path(tmp), extra))
            print(f"repeat {repeat}: {name} done", file=sys.stderr)
    rows = {}
    for name, runs in results.items():
        seconds = [s for run in runs for s in run["seconds"]]
        per_iteration = runs[0]["samples_per_iteration"]
        median = statistics.median(seconds)
        rows[name] = {
            "samples_per_iteration": per_iteration,
            "median_seconds_per_iteration": median,
            "samples_per_cpu_minute": 60.0 * per_iteration / (median * args.threads),
            "iterations_timed": len(seconds),
        }
    old, new = (rows[name]["samples_per_cpu_minute"] for name in models)
    print(f"{'model':<18} {'samples/it':>10} {'s/it':>8} {'samples/CPU-min':>16}")
    for name, row in rows.items():
        print(
            f"{name:<18} {row['samples_per_iteration']:>10} {row['median_seconds_per_iteration']:>8.2f} "
            f"{row['samples_per_cpu_minute']:>16.0f}"
        )
    print(f"ratio new / old: {new / old:.2f}x")
    report = {"settings": vars(args), "rows": rows, "ratio_new_over_old": new / old}
    (out / "bench_samples_per_minute.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
