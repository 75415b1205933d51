"""Images per second of every image reward on CPU at batch sizes 1, 8 and 32 (a table on stdout, JSON on disk).

The preference models (pickscore, clip_score, hpsv2, image_reward, aesthetic) run on TINY RANDOM checkpoints (the
ones the tests build, in each original layout: 2 layers, width 32, 32-px input), because the real weights cannot
be fetched here; their numbers measure flowrl's preprocessing, tokenisation and loading path, not ViT-H/L compute.
shapes, jpeg_* and ocr run for real (ocr on rapidocr's bundled PP-OCR models). Each cell is the median of
`--repeats` timed calls after one warm-up call, on random `--image-size` images.

    OMP_NUM_THREADS=1 python scripts/bench_rewards.py --json runs/bench_rewards.json
"""

import argparse
import importlib.util
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rewards import load_reward  # noqa: E402

TINY = ("pickscore", "clip_score", "hpsv2", "image_reward", "aesthetic")
PROMPTS = ["a red circle", "two blue squares", "a red square left of a blue circle"]  # ShapeWorld grammar
OCR_PROMPT = 'a sign that says "flow"'


def _fixtures():
    path = Path(__file__).resolve().parents[1] / "tests" / "rewards" / "reward_fixtures.py"
    spec = importlib.util.spec_from_file_location("reward_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_rewards(names: list[str], tmp: Path) -> dict:
    """Each reward by name; the preference models on tiny random checkpoints written to `tmp`."""
    fx = _fixtures() if any(n in TINY for n in names) else None
    out = {}
    for name in names:
        if name == "pickscore":
            out[name] = load_reward(name, path=fx.clip_folder(tmp / "pick", bpe=fx.write_bpe(tmp / "bpe.gz")))
        elif name == "clip_score":
            out[name] = load_reward(name, path=fx.clip_folder(tmp / "clip", bpe=fx.write_bpe(tmp / "bpe.gz")))
        elif name == "hpsv2":
            torch.save({"state_dict": fx.openclip_state_dict()}, tmp / "hps.pt")
            bpe = fx.write_bpe(tmp / "bpe.gz")
            out[name] = load_reward(name, path=tmp / "hps.pt", tokenizer_path=bpe, vision_heads=4, text_heads=4)
        elif name == "image_reward":
            fx.imagereward_checkpoint(tmp / "ir.pt")
            vocab = fx.write_vocab(tmp / "vocab.txt")
            out[name] = load_reward(name, path=tmp / "ir.pt", vocab_path=vocab, vision_heads=4, text_heads=4)
        elif name == "aesthetic":
            fx.laion_mlp(tmp / "mlp.pth")
            clip = fx.clip_folder(tmp / "clip_aes", bpe=fx.write_bpe(tmp / "bpe.gz"))
            out[name] = load_reward(name, path=tmp / "mlp.pth", clip_path=clip)
        else:
            out[name] = load_reward(name)
    return out


def bench(fn, batch: int, *, image_size: int, repeats: int) -> float:
    """Median images per second of `fn` on `batch` random images."""
    images = torch.rand(batch, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    prompts = [OCR_PROMPT if fn.name == "ocr" else PROMPTS[i % len(PROMPTS)] for i in range(batch)]
    fn(images, prompts, None)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(images, prompts, None)
        times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = ["shapes", "jpeg_compressibility", "jpeg_incompressibility", "ocr", *TINY]
    parser.add_argument("--rewards", nargs="+", default=default, help="reward names to time")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--image-size", type=int, default=64, help="side of the random square images")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per cell (median)")
    parser.add_argument("--json", default="runs/bench_rewards.json", help="where to write the results")
    args = parser.parse_args()
    torch.manual_seed(0)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        fns = build_rewards(args.rewards, Path(tmp))
        for name, fn in fns.items():
            results[name] = {
                b: bench(fn, b, image_size=args.image_size, repeats=args.repeats) for b in args.batch_sizes
            }
    header = "| reward | weights | " + " | ".join(f"batch {b} (img/s)" for b in args.batch_sizes) + " |"
    print(header)
    print("|---|---|" + "---:|" * len(args.batch_sizes))
    for name, row in results.items():
        weights = "tiny random" if name in TINY else "real"
        print(f"| {name} | {weights} | " + " | ".join(f"{row[b]:.1f}" for b in args.batch_sizes) + " |")
    print(f"({args.image_size}x{args.image_size} inputs; torch threads {torch.get_num_threads()}; "
          f"preference models on tiny random checkpoints, not the real ViT-H/L sizes)")  # fmt: skip
    payload = {
        "images_per_second": {n: {str(b): v for b, v in row.items()} for n, row in results.items()},
        "tiny_random_weights": [n for n in results if n in TINY],
        "image_size": args.image_size,
        "repeats": args.repeats,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    main()
