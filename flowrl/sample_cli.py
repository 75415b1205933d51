"""`flowrl sample`: write a PNG grid of samples from any model `flowrl train` accepts.

Examples::

    flowrl sample --prompt "a red circle" --prompt "two blue squares" --out samples.png      # shipped ShapeWorld
    flowrl sample --model /models/sd35m --lora runs/my_run/lora --prompts prompts.txt --device cuda --out s.png
    flowrl sample --run runs/my_run --prompt "a cat" --out tuned.png       # the run's final weights (EMA if on)

Each prompt is one row of `--num-images` samples (Euler ODE with classifier-free guidance, the model's or the run's
steps and guidance unless given); prompt i's noise is seeded with ``--seed + i``, as in `flowrl eval`. The model
options (``--model``, ``--kind``, ``--lora``, ``--run``, ``--device``, ``--dtype``, ``--resolution``) are those of
`flowrl eval` and `flowrl demo` (`flowrl.eval.load_model`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

SMALL_IMAGE = 64  # images at most this many pixels a side are enlarged in the grid (ShapeWorld's 32 px)


def default_model_folder() -> Path:
    """The shipped model: `assets/shapeworld` at the repository root (one level above this package)."""
    return Path(__file__).resolve().parents[1] / "assets" / "shapeworld"


def build_parser() -> argparse.ArgumentParser:
    from flowrl.eval.load_model import add_model_arguments
    from flowrl.runtime.cli import examples_parser

    parser = examples_parser(
        "flowrl sample",
        "Write a PNG grid of samples (one row per prompt) from a model, a LoRA or a training run.",
        __doc__,
    )
    parser.add_argument("--prompt", action="append", default=[], help="a prompt; repeat for several rows")
    parser.add_argument("--prompts", help="a prompts file (.txt one a line as training, .jsonl or .csv)")
    add_model_arguments(parser, model_help="model folder (default: the shipped assets/shapeworld, unless --run)")
    parser.add_argument("--seed", type=int, default=0, help="prompt i's noise is seeded with seed + i")
    parser.add_argument("--steps", type=int, default=None, help="Euler steps (default: the model's or the run's)")
    parser.add_argument("--guidance", type=float, default=None, help="CFG scale (default: the model's or the run's)")
    parser.add_argument("--num-images", type=int, default=4, help="images per prompt (columns)")
    parser.add_argument("--scale", type=int, default=None, help=f"pixel upscaling (default 4 up to {SMALL_IMAGE} px)")
    parser.add_argument("--out", default="samples.png", help="output PNG path")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar (hidden off a terminal)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the sample command; returns the process exit code (0 on success, 2 on bad usage)."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from flowrl.eval.generate import generate
    from flowrl.eval.load_model import model_from_args
    from flowrl.eval.prompts_file import read_prompts
    from flowrl.shapes.grid import image_grid

    if args.num_images < 1:
        print(f"flowrl sample: --num-images must be at least 1, got {args.num_images}.", file=sys.stderr)
        return 2
    try:
        prompts = list(args.prompt)
        if args.prompts:
            rows, bad = read_prompts(args.prompts)
            if bad:
                raise ValueError(f"{args.prompts} line {bad[0].line}: {bad[0].reason}")
            prompts += [r.prompt for r in rows]
        if not prompts:
            raise ValueError("no prompt: pass --prompt TEXT (repeatable) or --prompts FILE.")
        default = default_model_folder() if args.run is None else None
        model = model_from_args(args, model=args.model or default)
        images, _ = generate(
            model,
            prompts,
            samples_per_prompt=args.num_images,
            seed=args.seed,
            num_inference_steps=args.steps,
            guidance_scale=args.guidance,
            show_progress=False if args.no_progress else None,
            desc="flowrl sample",
        )
    except (ValueError, FileNotFoundError) as err:
        print(f"flowrl sample: {err}", file=sys.stderr)
        return 2
    scale = args.scale if args.scale is not None else (4 if model.image_size <= SMALL_IMAGE else 1)
    picture = image_grid(torch.stack(images), num_rows=len(prompts), scale=scale, row_labels=prompts)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    picture.save(args.out)
    print(f"wrote {args.out}: {len(prompts)} prompts x {args.num_images} images from {model.source}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
