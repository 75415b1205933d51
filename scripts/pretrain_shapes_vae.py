"""Train the ShapeWorld autoencoder: a tiny diffusers `AutoencoderKL`, 32x32x3 renders <-> 8x8x4 latents.

Algorithm: every step renders a fresh batch of train-split scenes (`flowrl.shapes.render`, all families), maps
pixels to [-1, 1], encodes them to the posterior, decodes a posterior sample and minimises
L1 + L2 (pixels) + `--kl-weight` * KL(posterior || N(0, I)). AdamW with linear warm-up then cosine decay to
`--min-lr-ratio` (`pretrain_shapes.lr_at`, the ShapeWorld model's schedule), whose progress follows the larger of
steps and training time (`--max-minutes`). Checkpoints are written atomically (temp file, then os.replace) to
`<out>/last.pt`; `--resume` continues from it (batches are seeded by step).

At the end it measures what the issue asks of the latent space: the grader's strict pass rate on decoded test-split
renders (latent = posterior mode; `--eval-scenes` scenes, 2,000 by default; the raw renders pass 100%), and the
latent statistics that become the VAE config's `shift_factor` / `scaling_factor` (SD3 convention:
z = (mode - shift_factor) * scaling_factor has mean 0, std 1). It exports `<out>/vae` (a diffusers folder).

    HF_HUB_OFFLINE=1 python scripts/pretrain_shapes_vae.py --out runs/pretrain_vae --threads 1 --max-minutes 15
"""

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

from flowrl.runtime.metrics import print_and_append
from flowrl.runtime.optim import set_lr
from flowrl.runtime.run_dir import atomic_torch_save
from flowrl.shapes.grader import grade
from flowrl.shapes.grammar import FAMILIES, format_prompt
from flowrl.shapes.model import build_vae
from flowrl.shapes.render import render_spec
from flowrl.shapes.sampler import sample_specs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pretrain_shapes import lr_at  # noqa: E402  (scripts/ is not a package; the ShapeWorld model's schedule)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/pretrain_vae", help="run folder (checkpoint, log, vae/)")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    parser.add_argument("--export-only", action="store_true", help="evaluate and export <out>/last.pt")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--channels", default="32,64,64", help="block_out_channels; 3 blocks = 4x downsampling")
    parser.add_argument("--latent-channels", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup-steps", type=int, default=100)
    parser.add_argument("--min-lr-ratio", type=float, default=0.02, help="the cosine decay ends at this x --lr")
    parser.add_argument("--max-steps", type=int, default=20000)
    parser.add_argument("--max-minutes", type=float, default=15.0)
    parser.add_argument("--kl-weight", type=float, default=1e-6)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--checkpoint-minutes", type=float, default=3.0)
    parser.add_argument("--eval-scenes", type=int, default=2000)
    return parser.parse_args(argv)


def scenes(count: int, *, split: str, seed: int, size: int) -> tuple[torch.Tensor, list[str]]:
    """`count` rendered scenes of one split, (count, 3, size, size) in [0, 1], and their prompts."""
    specs = sample_specs(count, split=split, seed=seed, family_weights=dict.fromkeys(FAMILIES, 1.0))
    rng = random.Random(seed)
    images = torch.stack([render_spec(spec, rng=rng, size=size) for spec in specs])
    return images, [format_prompt(spec) for spec in specs]


@torch.no_grad()
def evaluate(vae: torch.nn.Module, args: argparse.Namespace) -> dict:
    """Strict grader pass rate of decoded test-split renders and the latent mean / std (posterior mode)."""
    vae.eval()
    passed, total, latents = 0, 0, []
    for start in range(0, args.eval_scenes, 250):
        count = min(250, args.eval_scenes - start)
        images, prompts = scenes(count, split="test", seed=10_000_019 + start, size=args.image_size)
        mode = vae.encode(images * 2 - 1).latent_dist.mode()  # (B, C, h, w)
        latents.append(mode)
        decoded = ((vae.decode(mode).sample + 1) / 2).clamp(0, 1)
        passed += int(grade(decoded, prompts).strict.sum())
        total += count
    z = torch.cat(latents)
    return {"strict": passed / total, "scenes": total, "latent_mean": z.mean().item(), "latent_std": z.std().item()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    channels = tuple(int(c) for c in args.channels.split(","))
    vae = build_vae(image_size=args.image_size, block_out_channels=channels, latent_channels=args.latent_channels)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0)
    generator = torch.Generator().manual_seed(args.seed)
    step, train_seconds = 0, 0.0
    checkpoint = out / "last.pt"
    if args.resume or args.export_only:
        if not checkpoint.exists():
            raise SystemExit(f"--resume/--export-only need {checkpoint}; run without them to start fresh.")
        state = torch.load(checkpoint, weights_only=True)
        vae.load_state_dict(state["vae"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        step, train_seconds = state["step"], state["train_seconds"]
    log_path = out / "log.jsonl"

    def save() -> None:
        atomic_torch_save(
            {
                "vae": vae.state_dict(),
                "optimizer": optimizer.state_dict(),
                "generator": generator.get_state(),
                "step": step,
                "train_seconds": train_seconds,
            },
            checkpoint,
        )

    if not args.export_only:
        print_and_append(
            log_path, {"event": "start", "step": step, "params": sum(p.numel() for p in vae.parameters())}
        )
        vae.train()
        last_checkpoint, losses = time.time(), []
        while step < args.max_steps and not (args.max_minutes and train_seconds >= 60 * args.max_minutes):
            begin = time.time()
            set_lr(optimizer, lr_at(step, args, train_seconds))
            images, _ = scenes(args.batch_size, split="train", seed=args.seed * 1_000_003 + step, size=args.image_size)
            x = images * 2 - 1  # (B, 3, H, W)
            posterior = vae.encode(x).latent_dist
            z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator)
            recon = vae.decode(z).sample
            loss = (recon - x).abs().mean() + (recon - x).pow(2).mean() + args.kl_weight * posterior.kl().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
            optimizer.step()
            step += 1
            train_seconds += time.time() - begin
            losses.append(loss.item())
            if step % args.log_every == 0:
                print_and_append(
                    log_path, {"step": step, "loss": sum(losses) / len(losses), "train_min": train_seconds / 60}
                )
                losses = []
            if time.time() - last_checkpoint >= 60 * args.checkpoint_minutes:
                save()
                last_checkpoint = time.time()
        save()
    metrics = evaluate(vae, args)
    vae.register_to_config(shift_factor=metrics["latent_mean"], scaling_factor=1.0 / metrics["latent_std"])
    vae.save_pretrained(out / "vae", safe_serialization=True)
    provenance = {
        "train_steps": step,
        "train_minutes": round(train_seconds / 60, 1),
        "command": "python " + " ".join(sys.argv),
        **metrics,
    }
    (out / "vae" / "flowrl_training.json").write_text(json.dumps(provenance, indent=2) + "\n")
    print_and_append(log_path, {"event": "final_eval", **provenance})
    return 0


if __name__ == "__main__":
    torch.set_num_interop_threads(1)
    raise SystemExit(main())
