"""`flowrl eval`: score images with rewards and preference models, summarise, report, compare.

Three modes::

    # a folder of images and a prompts file (JSONL or CSV; each row names its image)
    flowrl eval --images samples/ --prompts prompts.jsonl --rewards shapes jpeg_compressibility --out eval/

    # samples generated from a ShapeWorld model (the base model or a run's final/) with fixed seeds
    flowrl eval --model runs/my_run/final --prompts prompts.jsonl --samples-per-prompt 4 --rewards shapes --out eval/
    # ... or the base model with a LoRA run's adapter
    flowrl eval --model assets/shapeworld --lora runs/my_run/lora --prompts prompts.jsonl --rewards shapes --out eval/

    # two score files (scores.json / scores.csv of earlier runs): per-prompt win rates, paired difference with CI
    flowrl eval --compare base/scores.json tuned/scores.json --out compare/

Constructor arguments of a reward (a checkpoint path, a device) go in ``--reward-arg NAME KEY=VALUE``, e.g.
``--reward-arg pickscore path=/models/PickScore_v1``; values are parsed as JSON when they are valid JSON.
Outputs in ``--out``: ``scores.csv``, ``scores.json``, ``summary.{json,csv}``, ``report.md`` with
``grid_<reward>.png`` (best and worst samples), and for ``--model`` the samples under ``images/``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from flowrl.eval.prompts_file import BadRow, PromptRow, read_prompts
from flowrl.eval.report import comparison_markdown, read_scores, write_report, write_scores, write_summary
from flowrl.eval.stats import compare_paired, summarize


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowrl eval",
        description="Score images (a folder, or samples of a ShapeWorld model) with rewards; compare score files.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", help="folder of images; the prompts file names each row's image")
    source.add_argument("--model", help="ShapeWorld model folder (base, or a run's final/) to sample from")
    source.add_argument("--compare", nargs=2, metavar=("A", "B"), help="compare two score files (json or csv)")
    parser.add_argument("--prompts", help="prompts file: .jsonl (objects with 'prompt', 'image') or .csv")
    parser.add_argument(
        "--rewards", nargs="+", default=[], help="reward names (see rewards.REWARDS) or module:factory"
    )
    parser.add_argument(
        "--reward-arg", nargs=2, action="append", default=[], metavar=("NAME", "KEY=VALUE"), help="reward kwarg"
    )
    parser.add_argument("--out", help="output folder (required except for --compare)")
    parser.add_argument("--skip-bad", action="store_true", help="skip bad prompt rows (reported) instead of failing")
    parser.add_argument("--samples-per-prompt", type=int, default=4, help="--model: images per prompt")
    parser.add_argument("--seed", type=int, default=0, help="--model: prompt i is sampled with seed + i")
    parser.add_argument("--steps", type=int, default=None, help="--model: Euler steps (default: the model's)")
    parser.add_argument("--guidance", type=float, default=None, help="--model: CFG scale (default: the model's)")
    parser.add_argument("--lora", default=None, help="--model: a run's lora/ folder to load on the model")
    parser.add_argument("--lora-alpha", type=float, default=None, help="--lora: alpha, if the file has no metadata")
    parser.add_argument("--device", default="cpu", help="--model: torch device for sampling")
    parser.add_argument("--batch-size", type=int, default=8, help="images per reward call")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% CIs")
    parser.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the bootstrap resampling")
    parser.add_argument("--grid-k", type=int, default=4, help="best and worst samples shown per reward")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return parser


def _reward_kwargs(pairs: list[list[str]], names: list[str]) -> dict[str, dict]:
    kwargs: dict[str, dict] = defaultdict(dict)
    for name, assignment in pairs:
        if name not in names:
            raise ValueError(f"--reward-arg names {name!r}, which is not in --rewards {names}.")
        key, sep, value = assignment.partition("=")
        if not sep or not key:
            raise ValueError(
                f"--reward-arg {name} {assignment!r}: expected KEY=VALUE, e.g. path=/models/PickScore_v1."
            )
        try:
            kwargs[name][key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[name][key] = value
    return kwargs


def _report_bad(path: str, bad: list[BadRow], skip: bool) -> bool:
    """Print the bad rows; True when the run must stop."""
    for b in bad:
        print(f"flowrl eval: {path} line {b.line}: {b.reason}" + (" (skipped)" if skip else ""), file=sys.stderr)
    if bad and not skip:
        print(
            f"flowrl eval: {len(bad)} bad row(s) in {path}; fix them or pass --skip-bad to skip them.", file=sys.stderr
        )
    return bool(bad) and not skip


def _compare(args: argparse.Namespace) -> int:
    a_rows, a_names, a_scores = read_scores(args.compare[0])
    b_rows, b_names, b_scores = read_scores(args.compare[1])
    names = [n for n in a_names if n in b_names]
    if not names:
        print(f"flowrl eval: no reward in common between {a_names} and {b_names}.", file=sys.stderr)
        return 2
    per_prompt = []
    for rows, file_names, scores in ((a_rows, a_names, a_scores), (b_rows, b_names, b_scores)):
        groups: dict[str, list[int]] = defaultdict(list)
        for i, row in enumerate(rows):
            groups[row["prompt"]].append(i)
        per_prompt.append(
            {p: scores[idx][:, [file_names.index(n) for n in names]].mean(0) for p, idx in groups.items()}
        )
    shared = [p for p in per_prompt[0] if p in per_prompt[1]]
    if not shared:
        print("flowrl eval: the two score files share no prompt; nothing to compare.", file=sys.stderr)
        return 2
    unmatched = len(per_prompt[0]) + len(per_prompt[1]) - 2 * len(shared)
    if unmatched:
        print(f"flowrl eval: {unmatched} prompt(s) appear in only one file and are left out.", file=sys.stderr)
    a = np.stack([per_prompt[0][p] for p in shared])  # (P, K)
    b = np.stack([per_prompt[1][p] for p in shared])  # (P, K)
    comparisons = {
        n: compare_paired(a[:, k], b[:, k], n_resamples=args.bootstrap, seed=args.bootstrap_seed)
        for k, n in enumerate(names)
    }
    table = comparison_markdown(comparisons, args.compare[0], args.compare[1])
    print(table)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "compare.md").write_text(f"# flowrl eval --compare\n\n{table}\n")
        payload = {"a": args.compare[0], "b": args.compare[1], **{n: c._asdict() for n, c in comparisons.items()}}
        (out / "compare.json").write_text(json.dumps(payload, indent=1) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run `flowrl eval`; returns the exit code (0 success, 2 bad usage or bad prompt rows)."""
    args = build_parser().parse_args(argv)
    if args.compare:
        return _compare(args)
    if not args.prompts or not args.out or not args.rewards:
        print("flowrl eval: --prompts, --rewards and --out are required with --images or --model.", file=sys.stderr)
        return 2
    try:
        kwargs = _reward_kwargs(args.reward_arg, args.rewards)
        rows, bad = read_prompts(args.prompts)
    except (ValueError, FileNotFoundError) as err:
        print(f"flowrl eval: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    if args.images:
        folder = Path(args.images)
        if not folder.is_dir():
            print(f"flowrl eval: --images {folder} is not a folder.", file=sys.stderr)
            return 2
        kept: list[PromptRow] = []
        for row in rows:
            if row.image is None:
                bad.append(BadRow(row.line, "no 'image' field (with --images every row names its image file)"))
            elif not (folder / row.image).is_file():
                bad.append(BadRow(row.line, f"image {row.image!r} not found in {folder}"))
            else:
                kept.append(row)
        bad.sort()
        if _report_bad(args.prompts, bad, args.skip_bad):
            return 2
        rows = kept
    elif _report_bad(args.prompts, bad, args.skip_bad):
        return 2
    if not rows:
        print(f"flowrl eval: no usable rows in {args.prompts}.", file=sys.stderr)
        return 2

    import rewards

    show = False if args.no_progress else None
    reward_fns = [rewards.load_reward(name, **kwargs.get(name, {})) for name in args.rewards]
    names = [fn.name for fn in reward_fns]
    if args.images:
        from flowrl.eval.scoring import load_image

        images = [load_image(Path(args.images) / row.image) for row in rows]
        records = [
            {"index": i, "prompt": r.prompt, "image": r.image, "sample": 0, "seed": "", "metadata": r.metadata}
            for i, r in enumerate(rows)
        ]
        source = f"images in `{args.images}`"
    else:
        from flowrl.eval.generate import generate_shapeworld
        from flowrl.train.plots import save_image_grid

        try:
            images, ids = generate_shapeworld(
                args.model,
                [r.prompt for r in rows],
                samples_per_prompt=args.samples_per_prompt,
                seed=args.seed,
                num_inference_steps=args.steps,
                guidance_scale=args.guidance,
                device=args.device,
                lora=args.lora,
                lora_alpha=args.lora_alpha,
                show_progress=show,
            )
        except (ValueError, FileNotFoundError) as err:
            print(f"flowrl eval: {err}", file=sys.stderr)
            return 2
        (out / "images").mkdir(parents=True, exist_ok=True)
        records = []
        for n, (img, (i, seed)) in enumerate(zip(images, ids, strict=True)):
            name = f"images/{i:05d}_{n % args.samples_per_prompt:02d}.png"
            save_image_grid(img[None], out / name, nrow=1, scale=1, padding=0)
            row = rows[i]
            sample = n % args.samples_per_prompt
            records.append(
                {
                    "index": n,
                    "prompt": row.prompt,
                    "image": name,
                    "sample": sample,
                    "seed": seed,
                    "metadata": row.metadata,
                }
            )
        lora = f" + LoRA `{args.lora}`" if args.lora else ""
        source = (
            f"{args.samples_per_prompt} samples per prompt from `{args.model}`{lora} (prompt i: seed {args.seed} + i)"
        )
    from flowrl.eval.scoring import score_images

    scores = score_images(
        images,
        [r["prompt"] for r in records],
        [dict(r["metadata"]) for r in records],
        reward_fns,
        batch_size=args.batch_size,
        show_progress=show,
    )
    write_scores(out, records, names, scores)
    summaries = {
        n: summarize(scores[:, k], n_resamples=args.bootstrap, seed=args.bootstrap_seed) for k, n in enumerate(names)
    }
    write_summary(out, summaries)
    notes = [f"{len(records)} images: {source}; prompts from `{args.prompts}`.", f"Bad rows skipped: {len(bad)}."]
    write_report(
        out, title="flowrl eval", summaries=summaries, names=names, scores=scores, rows=records, images=images,
        k=args.grid_k, notes=notes,
    )  # fmt: skip
    from flowrl.eval.report import summary_markdown

    print(summary_markdown(summaries))
    print(f"flowrl eval: wrote {out}/scores.csv, scores.json, summary.json, report.md", file=sys.stderr)
    return 0
