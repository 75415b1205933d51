"""Evaluate a ShapeWorld model: strict grader accuracy per prompt family on held-out prompts, plus a sample grid.

Prompts are drawn from the test split of each family (`flowrl.shapes.evaluate.stratified_prompts`, the same
draw for every model), each is sampled once per seed with the Euler ODE and classifier-free guidance, and every
image is graded by `flowrl.shapes.grade`. The grid shows a few test prompts per family; each cell has a green
frame if it passes the strict grader and a red one if not.

    HF_HUB_OFFLINE=1 python scripts/eval_shapes.py --model assets/shapeworld --per-family 80 --seeds 4 \
        --json runs/eval_shapes.json --grid docs/shapeworld_grid.png
"""

import argparse
import json
import os
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from flowrl.shapes.evaluate import evaluate_model, pass_at_k, stratified_prompts  # noqa: E402
from flowrl.shapes.grader import grade  # noqa: E402
from flowrl.shapes.grammar import FAMILIES, parse_prompt  # noqa: E402
from flowrl.shapes.grid import image_grid  # noqa: E402
from flowrl.shapes.model import ShapeWorldModel, load_shapeworld  # noqa: E402
from flowrl.shapes.sample_cli import default_model_folder  # noqa: E402
from flowrl.shapes.sampling import sample_images  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder (default: the shipped assets/shapeworld)")
    parser.add_argument("--per-family", type=int, default=80, help="held-out prompts per family")
    parser.add_argument("--split", default="test", choices=["test", "train"], help="train: for choosing settings")
    parser.add_argument("--seeds", type=int, default=4, help="samples per prompt (seeds 0..N-1)")
    parser.add_argument("--steps", type=int, default=10, help="Euler steps")
    parser.add_argument("--guidance", type=float, default=4.0, help="classifier-free guidance scale")
    parser.add_argument("--shift", type=float, default=3.0, help="SD3 time shift")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--json", default=None, help="write the metrics here")
    parser.add_argument("--grid", default=None, help="write a sample grid PNG here")
    parser.add_argument("--grid-prompts", type=int, default=2, help="grid rows per family")
    parser.add_argument("--grid-seeds", type=int, default=6, help="grid columns")
    return parser.parse_args(argv)


def framed(images: torch.Tensor, passed: torch.Tensor) -> torch.Tensor:
    """Add a 1 px frame, green where `passed` else red: (N, 3, H, W) -> (N, 3, H + 2, W + 2)."""
    colours = torch.where(passed[:, None], torch.tensor([0.0, 0.8, 0.0]), torch.tensor([0.8, 0.0, 0.0]))  # (N, 3)
    out = colours[:, :, None, None].expand(-1, -1, images.shape[2] + 2, images.shape[3] + 2).clone()
    out[:, :, 1:-1, 1:-1] = images
    return out


def write_grid(model: ShapeWorldModel, args: argparse.Namespace, path: Path) -> None:
    rows = stratified_prompts(args.grid_prompts, split="test", seed=123)
    labels = [f"{parse_prompt(prompt).family}: {prompt}" for prompt in rows]
    prompts = [prompt for prompt in rows for _ in range(args.grid_seeds)]
    images = sample_images(
        model,
        prompts,
        generator=torch.Generator().manual_seed(0),
        num_inference_steps=args.steps,
        guidance_scale=args.guidance,
        shift=args.shift,
    )  # (R * S, 3, H, W)
    passed = grade(images, prompts).strict  # (R * S,)
    picture = image_grid(framed(images, passed), num_rows=len(rows), scale=4, row_labels=labels)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    folder = Path(args.model) if args.model is not None else default_model_folder()
    model = load_shapeworld(folder)
    prompts = stratified_prompts(args.per_family, split=args.split, seed=0)
    start = time.time()
    result = evaluate_model(
        model,
        prompts,
        seeds=list(range(args.seeds)),
        num_inference_steps=args.steps,
        guidance_scale=args.guidance,
        shift=args.shift,
    )
    seconds = time.time() - start
    print(
        f"model {folder}: {len(prompts)} {args.split}-split prompts x {args.seeds} seeds, {args.steps} steps, "
        f"CFG {args.guidance}, shift {args.shift}, {seconds:.0f} s"
    )
    at_k = pass_at_k(result)
    print(f"| family | images | strict accuracy | mean partial credit | pass@{args.seeds} |")
    print("| --- | --- | --- | --- | --- |")
    for key in (*FAMILIES, "overall"):
        print(
            f"| {key} | {result.count[key]} | {100 * result.strict[key]:.1f}% | {result.score[key]:.3f} | "
            f"{100 * at_k[key]:.1f}% |"
        )
    if args.json is not None:
        record = {
            "model": str(folder),
            "args": vars(args),
            "strict": result.strict,
            "score": result.score,
            "count": result.count,
            f"pass_at_{args.seeds}": at_k,
            "eval_seconds": seconds,
            "distinct_prompts": len(set(prompts)),
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
    if args.grid is not None:
        write_grid(model, args, Path(args.grid))
        print(f"wrote {args.grid}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
