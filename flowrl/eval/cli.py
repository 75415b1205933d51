"""`flowrl eval`: score images with rewards and preference models, summarise, report, compare.

Three modes::

    # a folder of images and a prompts file (JSONL or CSV; each row names its image)
    flowrl eval --images samples/ --prompts prompts.jsonl --rewards shapes jpeg_compressibility --out eval/

    # samples generated with fixed seeds from any model `flowrl train` accepts: a ShapeWorld or diffusers pipeline
    # folder (SD3 / SD3.5, FLUX.1; kind detected from model_index.json, or --kind), a LoRA on it, or a run folder
    flowrl eval --model assets/shapeworld --prompts prompts.jsonl --samples-per-prompt 4 --rewards shapes --out eval/
    flowrl eval --model /models/sd35m --lora runs/my_run/lora --prompts prompts.txt --rewards pickscore \
        --reward-arg pickscore path=/models/PickScore_v1 --device cuda --dtype bfloat16 --out eval/
    flowrl eval --run runs/my_run --prompts prompts.txt --rewards hpsv2 --out eval_tuned/   # the run's weights, EMA

    # two evaluations (their folders, or scores.json / scores.csv): per-prompt win rates and the paired difference,
    # each with a bootstrap CI over prompts
    flowrl eval --compare eval_base/ eval_tuned/ --out compare/

Prompts files: ``.jsonl`` / ``.csv`` rows, or the plain text files training uses (one prompt a line). Constructor
arguments of a reward (a checkpoint path) go in ``--reward-arg NAME KEY=VALUE``, e.g.
``--reward-arg pickscore path=/models/PickScore_v1``; values are parsed as JSON when they are valid JSON.
``--device`` and ``--dtype`` apply to the model and to the preference-model rewards (pickscore, hpsv2, image_reward,
clip_score, aesthetic); ``--batch-size`` is the number of images per reward call.
Outputs in ``--out``: ``scores.csv``, ``scores.json``, ``summary.{json,csv}``, ``report.md`` with
``grid_<reward>.png`` (best and worst samples), and for generated samples the images under ``images/``.
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

# rewards built on a neural network: --device and --dtype go to their constructors (unless --reward-arg sets them)
PREFERENCE_REWARDS = ("pickscore", "clip_score", "hpsv2", "hpsv2_v2_0", "image_reward", "aesthetic")


def build_parser() -> argparse.ArgumentParser:
    from flowrl.eval.load_model import add_model_arguments
    from flowrl.runtime.cli import examples_parser

    parser = examples_parser(
        "flowrl eval",
        "Score images (a folder, or samples of a model or a run) with rewards; compare evaluations.",
        __doc__,
    )
    parser.add_argument("--images", help="folder of images; the prompts file names each row's image")
    parser.add_argument(
        "--compare", nargs=2, metavar=("A", "B"), help="compare two evaluations (folders or score files)"
    )
    add_model_arguments(parser, model_help="model folder to sample from (ShapeWorld, SD3 / SD3.5 or FLUX pipeline)")
    parser.add_argument("--prompts", help="prompts file: .jsonl, .csv, or .txt (one prompt a line, as training)")
    parser.add_argument(
        "--rewards", nargs="+", default=[], help="reward names (see rewards.REWARDS) or module:factory"
    )
    parser.add_argument(
        "--reward-arg", nargs=2, action="append", default=[], metavar=("NAME", "KEY=VALUE"), help="reward kwarg"
    )
    parser.add_argument("--out", help="output folder (required except for --compare)")
    parser.add_argument("--skip-bad", action="store_true", help="skip bad prompt rows (reported) instead of failing")
    parser.add_argument("--samples-per-prompt", type=int, default=4, help="--model / --run: images per prompt")
    parser.add_argument("--seed", type=int, default=0, help="--model / --run: prompt i is sampled with seed + i")
    parser.add_argument("--steps", type=int, default=None, help="Euler steps (default: the model's or the run's)")
    parser.add_argument("--guidance", type=float, default=None, help="CFG scale (default: the model's or the run's)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per reward call")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% CIs")
    parser.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the bootstrap resampling")
    parser.add_argument("--grid-k", type=int, default=4, help="best and worst samples shown per reward")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars (hidden off a terminal)")
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


def _sources(args: argparse.Namespace) -> str | None:
    """Which mode the arguments ask for ('images', 'model', 'compare'), or None after printing why none fits."""
    modes = [m for m, given in (("images", args.images), ("compare", args.compare)) if given]
    if args.model is not None or args.run is not None:
        modes.append("model")
    if len(modes) != 1:
        print(
            "flowrl eval: pass exactly one of --images FOLDER, --model FOLDER / --run RUN (samples), or --compare A B"
            f"; got {modes or 'none'}.",
            file=sys.stderr,
        )
        return None
    if modes[0] != "model" and (args.lora or args.kind):
        print("flowrl eval: --lora and --kind go with --model.", file=sys.stderr)
        return None
    return modes[0]


def main(argv: list[str] | None = None) -> int:
    """Run `flowrl eval`; returns the exit code (0 success, 2 bad usage or bad prompt rows)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--vlm"]:  # a vision-language model on ShapeWorld questions (flowrl/vlm/eval_cli.py)
        from flowrl.vlm.eval_cli import main as vlm_main

        return vlm_main(argv[1:])
    args = build_parser().parse_args(argv)
    mode = _sources(args)
    if mode is None:
        return 2
    if mode == "compare":
        try:
            return _compare(args)
        except (ValueError, FileNotFoundError) as err:
            print(f"flowrl eval: {err}", file=sys.stderr)
            return 2
    if not args.prompts or not args.out or not args.rewards:
        print("flowrl eval: --prompts, --rewards and --out are required to score images or samples.", file=sys.stderr)
        return 2
    try:
        kwargs = _reward_kwargs(args.reward_arg, args.rewards)
        rows, bad = read_prompts(args.prompts)
    except (ValueError, FileNotFoundError) as err:
        print(f"flowrl eval: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    if mode == "images":
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
    from flowrl.eval.load_model import DTYPES

    show = False if args.no_progress else None
    for name in args.rewards:
        if name in PREFERENCE_REWARDS:
            kwargs[name] = {"device": args.device, "dtype": DTYPES[args.dtype], **kwargs.get(name, {})}
    try:  # load the rewards first: a wrong name or checkpoint path fails before any sampling
        reward_fns = [rewards.load_reward(name, **kwargs.get(name, {})) for name in args.rewards]
    except (ValueError, FileNotFoundError) as err:
        print(f"flowrl eval: {err}", file=sys.stderr)
        return 2
    names = [fn.name for fn in reward_fns]
    if mode == "images":
        from flowrl.eval.scoring import load_image

        images = [load_image(Path(args.images) / row.image) for row in rows]
        records = [
            {"index": i, "prompt": r.prompt, "image": r.image, "sample": 0, "seed": "", "metadata": r.metadata}
            for i, r in enumerate(rows)
        ]
        source = f"images in `{args.images}`"
    else:
        from flowrl.eval.generate import generate
        from flowrl.eval.load_model import model_from_args
        from flowrl.runtime.plots import save_image_grid

        try:
            model = model_from_args(args)
            images, ids = generate(
                model,
                [r.prompt for r in rows],
                samples_per_prompt=args.samples_per_prompt,
                seed=args.seed,
                num_inference_steps=args.steps,
                guidance_scale=args.guidance,
                show_progress=show,
                desc="flowrl eval: sampling",
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
        steps = args.steps or model.num_inference_steps
        guidance = model.guidance_scale if args.guidance is None else args.guidance
        source = (
            f"{args.samples_per_prompt} samples per prompt from {model.source} (prompt i: seed {args.seed} + i; "
            f"{steps} Euler steps, guidance {guidance:g}, {model.image_size} px)"
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
