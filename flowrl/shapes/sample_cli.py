"""`flowrl sample`: generate a PNG grid from a ShapeWorld model (the shipped one by default).

Example::

    python -m flowrl.shapes.sample_cli --prompt "a red circle" --prompt "two blue squares" --out samples.png

Each prompt is one row of `--num-images` samples (Euler ODE with classifier-free guidance).
"""

import argparse
import os
from pathlib import Path

import torch

from flowrl.shapes.grid import image_grid


def default_model_folder() -> Path:
    """The shipped model: `assets/shapeworld` at the repository root (two levels above this package)."""
    return Path(__file__).resolve().parents[2] / "assets" / "shapeworld"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowrl sample", description="Write a PNG grid of ShapeWorld samples.")
    parser.add_argument("--prompt", action="append", required=True, help="a prompt; repeat for several rows")
    parser.add_argument("--model", default=None, help="model folder (default: the shipped assets/shapeworld)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial noise")
    parser.add_argument("--steps", type=int, default=None, help="Euler steps (default: the model's, 10)")
    parser.add_argument("--guidance", type=float, default=None, help="CFG scale (default: the model's, 4.0)")
    parser.add_argument("--shift", type=float, default=None, help="time shift (default: the model's, 3.0)")
    parser.add_argument("--num-images", type=int, default=4, help="images per prompt (columns)")
    parser.add_argument("--scale", type=int, default=4, help="pixel upscaling in the PNG")
    parser.add_argument("--out", default="shapeworld_samples.png", help="output PNG path")
    parser.add_argument("--device", default="cpu", help="torch device")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the sample command; returns the process exit code (0 on success)."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from flowrl.shapes.grammar import parse_prompt
    from flowrl.shapes.model import load_shapeworld
    from flowrl.shapes.sampling import sample_images

    for prompt in args.prompt:
        parse_prompt(prompt)  # fail fast, naming the unknown word
    if args.num_images < 1:
        raise SystemExit(f"--num-images must be at least 1, got {args.num_images}.")
    folder = Path(args.model) if args.model is not None else default_model_folder()
    model = load_shapeworld(folder, device=args.device)
    prompts = [prompt for prompt in args.prompt for _ in range(args.num_images)]
    images = sample_images(
        model,
        prompts,
        generator=torch.Generator().manual_seed(args.seed),
        num_inference_steps=args.steps if args.steps is not None else model.meta["num_inference_steps"],
        guidance_scale=args.guidance if args.guidance is not None else model.meta["guidance_scale"],
        shift=args.shift if args.shift is not None else model.meta["shift"],
    )  # (P * N, 3, H, W)
    picture = image_grid(images, num_rows=len(args.prompt), scale=args.scale, row_labels=args.prompt)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    picture.save(args.out)
    print(f"wrote {args.out}: {len(args.prompt)} prompts x {args.num_images} images from {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
