"""Compare the ShapeWorld presets of every image method at the same budget: network evaluations or wall minutes.

Each preset trains from the same base model with ``train.max_nfe = BUDGET`` (rollout + training NFE, the cost model
of the tree sampler) or ``train.time_limit_minutes = MINUTES`` (training and its evaluations, one run after the
other on the same machine), and is evaluated on the same held-out prompts and seeds every few iterations and at the
end. The script writes a table (held-out strict accuracy, its paired change from the base with the standard error,
NFE, wall time) and a plot (accuracy against NFE and against wall time) to docs/benchmarks.md,
docs/compare_methods.png and a JSON file.

    python scripts/compare_methods.py --nfe-budget 60000                   # every shapes_* preset
    python scripts/compare_methods.py --minutes 5 --eval-every 0 --prompts-per-family 80 --seeds 4   # equal time
    python scripts/compare_methods.py --presets shapes_flow_grpo shapes_mixgrpo --nfe-budget 20000 --guard
    python scripts/compare_methods.py --presets shapes_awm --nfe-budget 60000 \
        --add-to runs/compare/<stamp>/compare_methods.json     # one more row for an earlier comparison

Wall times are measured one run after the other on the same machine; compare them as ratios.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from flowrl.models.shapeworld import load_shapeworld_adapter  # noqa: E402
from flowrl.runtime.metrics import read_metrics  # noqa: E402
from flowrl.runtime.run_dir import create_run_dir  # noqa: E402
from flowrl.train.adapters import resolve_model_path  # noqa: E402
from flowrl.train.evaluation import EvalSummary, evaluate  # noqa: E402
from flowrl.train.image import train  # noqa: E402
from flowrl.train.image_cli import PRESETS_DIR, load_config  # noqa: E402
from flowrl.train.shapes_eval import paired_change, shapeworld_eval_set  # noqa: E402


def markers(kind: str) -> tuple[str, str]:
    """The docs/benchmarks.md section of one budget kind ("nfe" keeps the historical markers, "time" has its own)."""
    tag = "compare-methods" if kind == "nfe" else f"compare-methods-{kind}"
    return f"<!-- {tag}:start -->", f"<!-- {tag}:end -->"


def plot_runs(runs: list[dict], path: Path) -> None:
    """Held-out accuracy against NFE and against wall minutes, one line per run (20 distinct colours, then the
    marker changes too)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    colors = plt.cm.tab20.colors
    for i, r in enumerate(runs):
        nfe, minutes, acc = zip(*r["curve"], strict=True)
        style = dict(marker="os^D"[(i // len(colors)) % 4], color=colors[i % len(colors)], label=r["method"])
        axes[0].plot(nfe, [100 * a for a in acc], **style)
        axes[1].plot(minutes, [100 * a for a in acc], **style)
    axes[0].set(xlabel="network evaluations (rollout + training)", ylabel="held-out strict accuracy (%)")
    axes[1].set(xlabel="wall minutes", ylabel="held-out strict accuracy (%)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    presets = sorted(p.stem for p in PRESETS_DIR.glob("shapes_*.yaml"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=presets, choices=presets)
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--nfe-budget", type=int, help="network evaluations per method")
    budget.add_argument("--minutes", type=float, help="wall minutes per method (training and its evaluations)")
    parser.add_argument("--guard", action="store_true", help="also run every preset with method.guard=true")
    parser.add_argument("--model", default="assets/shapeworld")
    parser.add_argument(
        "--eval-every", type=int, default=10, help="iterations between evaluations (0: only the final one)"
    )
    parser.add_argument("--prompts-per-family", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=2, help="evaluation seeds per prompt")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=Path("runs/compare"))
    parser.add_argument("--docs", type=Path, default=Path("docs"))
    parser.add_argument(
        "--add-to",
        type=Path,
        help="compare_methods.json of an earlier comparison: its base evaluation and runs are kept and the given "
        "presets are added to its table (same budget, seeds, prompts and overrides required)",
    )
    parser.add_argument("overrides", nargs="*", help="key.path=value overrides applied to every preset")
    args = parser.parse_args()
    settings = {
        "nfe_budget": args.nfe_budget,
        "minutes": args.minutes,
        "seeds": args.seeds,
        "prompts_per_family": args.prompts_per_family,
        "overrides": args.overrides,
    }
    previous = json.loads(args.add_to.read_text()) if args.add_to else None
    if previous is not None:
        differ = [k for k, v in settings.items() if k in previous and previous[k] != v]
        if differ:
            raise SystemExit(
                f"--add-to {args.add_to}: {', '.join(differ)} differ from that comparison "
                f"({', '.join(f'{k}={previous[k]}' for k in differ)}); rerun with the same values."
            )
    torch.set_num_threads(args.threads)
    out_dir = create_run_dir(args.out)  # a fresh folder (a -2 suffix when one of the same second exists)
    stamp = out_dir.name
    eval_set = shapeworld_eval_set(heldout_per_family=args.prompts_per_family, train_per_family=0)
    common = [
        f"model.path={args.model}",
        f"train.max_nfe={args.nfe_budget or 0}",
        f"train.time_limit_minutes={args.minutes or 0}",
        f"train.threads={args.threads}",  # every preset at the same thread count (presets may set their own)
        "train.iterations=100000",
        "eval.at_start=false",
        f"eval.every={args.eval_every or 100000}",
        f"eval.prompts_per_family={args.prompts_per_family}",
        f"eval.seeds={list(range(args.seeds))}",
        "eval.train_prompts_per_family=0",
        f"run.root={out_dir}",
        "run.tensorboard=false",
        "run.checkpoint_every=100000",
        *args.overrides,
    ]

    if previous is not None:  # the same prompts and seeds: its base evaluation stands
        base = EvalSummary(
            previous["base"], {}, len(eval_set.prompts) * args.seeds, {"overall": previous.get("base_outcomes")}
        )
    else:
        base_cfg = load_config(preset=args.presets[0], overrides=common)
        adapter = load_shapeworld_adapter(resolve_model_path(base_cfg.model.path), guidance_scale=4.0)
        base, _ = evaluate(base_cfg, adapter, eval_set.prompts, [], eval_set.prefixes)
        del adapter

    runs = list(previous["runs"]) if previous is not None else []
    for preset in args.presets:
        for guard in [False, True] if args.guard else [False]:
            name = preset.removeprefix("shapes_") + ("+guard" if guard else "")
            cfg = load_config(
                preset=preset, overrides=[*common, f"run.name={name}", f"method.guard={str(guard).lower()}"]
            )
            t0 = time.perf_counter()
            result = train(cfg)
            records = read_metrics(result.run_dir / "metrics.jsonl")
            curve = [(0.0, 0.0, base.strict["overall"])] + [
                (r["nfe_total"], r["wall_minutes"], r["eval/strict/overall"])
                for r in records
                if r.get("eval/strict/overall") is not None
            ]
            runs.append(
                {
                    "method": name,
                    "iterations": result.iterations,
                    "nfe": records[-1]["nfe_total"],
                    "minutes": (time.perf_counter() - t0) / 60,
                    "final": result.final.strict,
                    "curve": curve,
                    "run_dir": str(result.run_dir),
                }
            )
            if base.outcomes and base.outcomes.get("overall") and result.final.outcomes:
                runs[-1]["change"] = paired_change(base.outcomes["overall"], result.final.outcomes["overall"])
            print(f"{name}: {100 * result.final.strict['overall']:.1f}% after {result.iterations} iterations")

    families = [k for k in base.strict if k != "overall"]
    header = "| method | iterations | NFE | minutes | strict overall | change (paired s.e.) | " + " | ".join(families)
    lines = [header + " |", "|" + "---|" * (6 + len(families))]
    lines.append(
        f"| base model | 0 | 0 | 0 | {100 * base.strict['overall']:.1f}% | | "
        + " | ".join(f"{100 * base.strict[f]:.1f}%" for f in families)
        + " |"
    )
    for r in runs:
        lines.append(
            f"| {r['method']} | {r['iterations']} | {r['nfe']:.0f} | {r['minutes']:.1f} | "
            f"{100 * r['final']['overall']:.1f}% | "
            + (f"{100 * r['change'][0]:+.1f} +- {100 * r['change'][1]:.1f} | " if r.get("change") else "| ")
            + " | ".join(f"{100 * r['final'][f]:.1f}%" for f in families)
            + " |"
        )
    table = "\n".join(lines)
    print(table)

    args.docs.mkdir(parents=True, exist_ok=True)
    kind = "time" if args.minutes else "nfe"
    start, end = markers(kind)
    plot_name = "compare_methods.png" if kind == "nfe" else "compare_methods_time.png"
    plot_runs(runs, args.docs / plot_name)

    n = len(eval_set.prompts) * args.seeds
    added, shown = "", stamp  # shown: when the comparison's base was measured
    if previous is not None:
        names = ", ".join(r["method"] for r in runs[len(previous["runs"]) :])
        added = f" Rows {names} were added to that comparison with `--add-to` (same settings) at {stamp}."
        shown = previous.get("stamp", "an earlier run")
    p = base.strict["overall"]
    se = 100 * (p * (1 - p) / n) ** 0.5
    what, flag = (
        ("wall time", f"--minutes {args.minutes:g}") if args.minutes else ("NFE", f"--nfe-budget {args.nfe_budget}")
    )
    section = (
        f"{start}\n## Image methods at equal {what} on ShapeWorld\n\n"
        f"Command: `python scripts/compare_methods.py {flag}"
        f"{' --guard' if args.guard else ''} --seeds {args.seeds} --prompts-per-family "
        f"{args.prompts_per_family} --eval-every {args.eval_every}"
        f"{' ' + ' '.join(args.overrides) if args.overrides else ''}` "
        f"({platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s), {shown}). "
        f"Held-out strict accuracy on {n} paired samples (same prompts and seeds for every row; one standard "
        f"error of the base accuracy is ±{se:.1f} points).\n\n{table}\n\n![accuracy vs NFE and wall time]"
        f"({plot_name}){added}\n{end}"
    )
    doc = args.docs / "benchmarks.md"
    text = doc.read_text() if doc.is_file() else "# Benchmarks\n"
    text = (
        re.sub(re.escape(start) + ".*?" + re.escape(end), section, text, flags=re.S)
        if start in text
        else text.rstrip() + "\n\n" + section + "\n"
    )
    doc.write_text(text)
    (out_dir / "compare_methods.json").write_text(
        json.dumps(
            {
                **settings,
                "stamp": shown,
                "base": base.strict,
                "base_outcomes": (base.outcomes or {}).get("overall"),
                "runs": runs,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
