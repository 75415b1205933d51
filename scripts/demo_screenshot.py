"""Regenerate docs/demo.png: start `flowrl demo` in-process, generate one prompt in headless Chromium, screenshot.

    python scripts/demo_screenshot.py                       # shipped assets/shapeworld, base only
    python scripts/demo_screenshot.py --run runs/<name>     # base vs a trained run
    python scripts/demo_screenshot.py --tiny                # tiny random base + perturbed copy (no model needed)

Needs the demo extra, the Playwright package and Debian's chromium (see docs/demo.md). Without assets/shapeworld
and without --model the script falls back to --tiny and says so.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

from flowrl.config import dump_yaml
from flowrl.demo.app import build_demo
from flowrl.demo.browser import chromium_page, generate_in_page, serve
from flowrl.demo.models import default_model_folder
from flowrl.demo.run_view import load_run_view
from flowrl.eval.load_model import load_model
from flowrl.shapes.model import build_shapeworld, save_shapeworld
from flowrl.train.image_cli import load_config

ROOT = Path(__file__).resolve().parents[1]


def _tiny_models(folder: Path) -> tuple[Path, Path]:
    """A tiny random base model and a run folder whose final/ holds a perturbed copy of it."""
    torch.manual_seed(0)
    model = build_shapeworld(
        num_layers=1, num_attention_heads=2, attention_head_dim=8, text_hidden_size=16, text_layers=1, text_heads=2
    )
    save_shapeworld(model, folder / "base")
    with torch.no_grad():
        for p in model.transformer.parameters():
            p.add_(0.05 * torch.randn_like(p))
    save_shapeworld(model, folder / "run" / "final")
    cfg = load_config(preset=None, overrides=[f"model.path={folder / 'base'}", "model.lora_rank=0"])
    (folder / "run" / "config.yaml").write_text(dump_yaml(cfg))  # what `--run` reads: kind, base, full fine-tune
    return folder / "base", folder / "run"


def _shown(path: Path) -> str:
    """`path` relative to the repository when it lies inside it (no machine-specific prefix in the screenshot)."""
    resolved = path.resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="base model folder (default: assets/shapeworld)")
    parser.add_argument("--run", type=Path, help="a `flowrl train` run folder to compare with")
    parser.add_argument("--tiny", action="store_true", help="use a tiny random model and a perturbed copy")
    parser.add_argument("--prompt", default="a red circle above a blue square")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "demo.png")
    args = parser.parse_args(argv)
    model = args.model or default_model_folder()
    with tempfile.TemporaryDirectory(prefix="flowrl-demo-shot-") as scratch:
        run = args.run
        if args.tiny or not model.is_dir():
            if not args.tiny:
                print(f"{model} not found: screenshot of a tiny random model (--tiny).", file=sys.stderr)
            model, run = _tiny_models(Path(scratch))
        base = load_model(model)
        base = base._replace(source=f"base model {_shown(model) if not args.tiny else 'tiny random'}")
        tuned = load_model(model, run=run) if run is not None else None
        demo = build_demo(base, tuned, run_view=load_run_view(run) if run is not None else None)
        with serve(demo) as url, chromium_page(width=1100, height=900) as page:
            generate_in_page(page, url, args.prompt, seed=args.seed)
            page.locator("#base-image img").wait_for()
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
