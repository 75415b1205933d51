"""Pretrain the ShapeWorld text-to-image pipeline on CPU (latent rectified flow, text dropout for CFG, EMA).

Algorithm: every step renders a fresh batch of train-split scenes (`flowrl.shapes.render`), encodes them with the
frozen autoencoder of `scripts/pretrain_shapes_vae.py` into normalised latents x0 (posterior mode), draws noise and
sigma ~ logit-normal(0, 1), forms x_sigma = (1 - sigma) * x0 + sigma * noise and regresses the transformer's
output at timestep 1000 * sigma onto v = noise - x0 (mean squared error). A fraction of prompts is replaced by ""
so the same network learns the unconditional velocity used by classifier-free guidance. Both CLIP text encoders
train jointly (through the pipeline's own `encode_prompt`). AdamW with linear warm-up then cosine decay; an
exponential moving average (EMA) of all weights is evaluated and exported.

It checkpoints atomically (temp file, then os.replace) every `--checkpoint-minutes` to `<out>/last.pt`, and
`--resume` continues from it (data and dropout draws are seeded by step, so a resumed run sees the batches a
straight run would). At the end it evaluates strict accuracy per family on held-out prompts and exports the EMA
pipeline folder to `<out>/model`. `--export-only` exports and evaluates the current checkpoint without training.

The shipped model (assets/shapeworld) was trained with the commands recorded in its flowrl_shapeworld.json
(docs/shapeworld.md has the measured result), in two steps:

    HF_HUB_OFFLINE=1 python scripts/pretrain_shapes_vae.py --out runs/pretrain_vae --threads 2 --max-minutes 20
    HF_HUB_OFFLINE=1 nohup python scripts/pretrain_shapes.py --vae runs/pretrain_vae/vae --out runs/pretrain_shapes \
        --threads 1 > runs/pretrain_shapes.log 2>&1 &

Architecture timing only (no training): `python scripts/pretrain_shapes.py --vae <vae> --measure 8`.
"""

import argparse
import copy
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path

import torch

from flowrl.runtime.metrics import print_and_append
from flowrl.runtime.optim import scheduled_lr, set_lr
from flowrl.runtime.run_dir import atomic_torch_save
from flowrl.shapes.evaluate import evaluate_model, stratified_prompts
from flowrl.shapes.grammar import FAMILIES, format_prompt
from flowrl.shapes.model import (
    ShapeWorldModel,
    build_shapeworld,
    encode_images,
    encode_prompts,
    save_shapeworld,
    velocity,
)
from flowrl.shapes.render import render_spec
from flowrl.shapes.sampler import sample_specs


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/pretrain_shapes", help="run folder (checkpoints, logs, model)")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    parser.add_argument("--export-only", action="store_true", help="export and evaluate <out>/last.pt, no training")
    parser.add_argument("--measure", type=int, default=0, help="time this many train steps, print ms/step, exit")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, or cuda where one is available)")
    parser.add_argument("--seed", type=int, default=0)
    # model
    parser.add_argument("--vae", default="runs/pretrain_vae/vae", help="trained AutoencoderKL folder (frozen)")
    parser.add_argument("--patch-size", type=int, default=2)
    parser.add_argument("--num-layers", type=int, default=6)
    parser.add_argument("--num-heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=32)
    parser.add_argument("--text-hidden-size", type=int, default=64)
    parser.add_argument("--text-layers", type=int, default=2)
    parser.add_argument("--max-sequence-length", type=int, default=0, help="zero 'T5' tokens (T5 is absent)")
    # optimisation
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-steps", type=int, default=6000, help="steps of the cosine schedule (and the stop)")
    parser.add_argument("--max-minutes", type=float, default=0.0, help="also stop after this much training time")
    parser.add_argument(
        "--stop-minutes",
        type=float,
        default=0.0,
        help="stop (checkpoint, export, evaluate) after this much training time, keeping the lr schedule of "
        "--max-minutes (the shipped model: 15 of a 55-minute schedule)",
    )
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--min-lr-ratio", type=float, default=0.05, help="final lr = lr * this")
    parser.add_argument("--warmup-steps", type=int, default=200)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--grad-clip", type=float, default=1.0)
    parser.add_argument("--ema-decay", type=float, default=0.999)
    parser.add_argument("--text-dropout", type=float, default=0.1, help="fraction of prompts replaced by ''")
    parser.add_argument(
        "--family-weights",
        default="single=2,counting=1,two_objects=1,colors=1,position=1",
        help="comma-separated family=weight for the training prompt mix",
    )
    # logging, checkpoints, evaluation
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--checkpoint-minutes", type=float, default=5.0)
    parser.add_argument("--quick-eval-minutes", type=float, default=15.0, help="0 disables the periodic eval")
    parser.add_argument("--eval-per-family", type=int, default=80, help="final eval: test prompts per family")
    parser.add_argument("--eval-seeds", type=int, default=4, help="final eval: seeds per prompt")
    parser.add_argument("--eval-steps", type=int, default=10)
    parser.add_argument("--guidance-scale", type=float, default=4.0)
    parser.add_argument("--shift", type=float, default=3.0)
    return parser.parse_args(argv)


def parse_family_weights(text: str) -> dict[str, float]:
    weights = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        if name not in FAMILIES or not value:
            raise SystemExit(f"--family-weights item {item!r} must be family=weight with family in {FAMILIES}.")
        weights[name] = float(value)
    return weights


def lr_at(step: int, args: argparse.Namespace, train_seconds: float) -> float:
    """Linear warm-up (``--warmup-steps``) to ``--lr``, then cosine decay to ``--min-lr-ratio`` x lr at
    ``--max-steps`` (`flowrl.runtime.optim.scheduled_lr`). The decay's progress is at least the spent fraction of
    ``--max-minutes`` of training, so a run slowed down by a busy CPU still finishes its decay within its time budget
    (with a time limit the schedule depends on the machine's speed; without one it is exact)."""
    spent = train_seconds / (60 * args.max_minutes) if args.max_minutes else 0.0
    total, warmup = args.max_steps + 1, args.warmup_steps  # the decay ends at step max_steps
    return scheduled_lr(
        step,
        total=total,
        lr=args.lr,
        schedule="cosine",
        final_ratio=args.min_lr_ratio,
        warmup=warmup,
        min_progress=spent,
    )


def make_batch(
    step: int, args: argparse.Namespace, weights: dict[str, float], model: ShapeWorldModel
) -> tuple[torch.Tensor, list[str]]:
    """Fresh rendered batch for one step, seeded by (seed, step): latents x0 (B, C, h, w) and its prompts."""
    seed = args.seed * 1_000_003 + step
    specs = sample_specs(args.batch_size, split="train", seed=seed, family_weights=weights)
    rng = random.Random(seed)
    size = model.meta["image_size"]
    images = torch.stack([render_spec(spec, rng=rng, size=size) for spec in specs])  # (B, 3, H, W)
    prompts = [format_prompt(spec) if rng.random() >= args.text_dropout else "" for spec in specs]
    return encode_images(model, images), prompts


def flow_loss(
    model: ShapeWorldModel, x0: torch.Tensor, prompts: list[str], generator: torch.Generator
) -> torch.Tensor:
    """Rectified-flow MSE between the predicted velocity and noise - x0 at logit-normal sigma."""
    noise = torch.randn(x0.shape, generator=generator).to(x0.device)  # (B, C, h, w)
    sigma = torch.sigmoid(torch.randn(x0.shape[0], generator=generator)).to(x0.device)  # (B,)
    s = sigma[:, None, None, None]  # (B, 1, 1, 1)
    x_sigma = (1.0 - s) * x0 + s * noise
    v = velocity(model, x_sigma, sigma, encode_prompts(model, prompts))  # (B, C, h, w)
    return torch.nn.functional.mse_loss(v, noise - x0)


def trained_modules(model: ShapeWorldModel) -> dict[str, torch.nn.Module]:
    """The modules pretraining updates (the autoencoder stays frozen)."""
    return {
        "transformer": model.pipe.transformer,
        "text_encoder": model.pipe.text_encoder,
        "text_encoder_2": model.pipe.text_encoder_2,
    }


def parameters(model: ShapeWorldModel) -> list[torch.nn.Parameter]:
    return [p for module in trained_modules(model).values() for p in module.parameters()]


def model_state(model: ShapeWorldModel) -> dict:
    return {name: module.state_dict() for name, module in trained_modules(model).items()}


def load_model_state(model: ShapeWorldModel, state: dict) -> None:
    for name, module in trained_modules(model).items():
        module.load_state_dict(state[name])


def set_train(model: ShapeWorldModel, mode: bool) -> None:
    for module in trained_modules(model).values():
        module.train(mode)


def build(args: argparse.Namespace) -> ShapeWorldModel:
    from diffusers import AutoencoderKL

    if not Path(args.vae, "config.json").is_file():
        raise SystemExit(f"--vae {args.vae} is not an AutoencoderKL folder; train one with pretrain_shapes_vae.py.")
    vae = AutoencoderKL.from_pretrained(args.vae).requires_grad_(False).eval()
    model = build_shapeworld(
        vae,
        patch_size=args.patch_size,
        num_layers=args.num_layers,
        num_attention_heads=args.num_heads,
        attention_head_dim=args.head_dim,
        text_hidden_size=args.text_hidden_size,
        text_layers=args.text_layers,
        max_sequence_length=args.max_sequence_length,
        shift=args.shift,
        guidance_scale=args.guidance_scale,
        num_inference_steps=args.eval_steps,
    )
    model.pipe.to(args.device)
    return model


def run_eval(ema: ShapeWorldModel, args: argparse.Namespace, per_family: int, seeds: list[int]) -> dict:
    prompts = stratified_prompts(per_family, split="test", seed=0)
    start = time.time()
    with torch.no_grad():
        result = evaluate_model(
            ema,
            prompts,
            seeds=seeds,
            num_inference_steps=args.eval_steps,
            guidance_scale=args.guidance_scale,
            shift=args.shift,
        )
    return {"strict": result.strict, "score": result.score, "count": result.count, "eval_s": time.time() - start}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    weights = parse_family_weights(args.family_weights)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = build(args)
    ema = copy.deepcopy(model)
    for param in parameters(ema):
        param.requires_grad_(False)
    optimizer = torch.optim.AdamW(parameters(model), lr=args.lr, betas=(0.9, 0.99), weight_decay=args.weight_decay)
    generator = torch.Generator().manual_seed(args.seed)
    step, train_seconds = 0, 0.0
    checkpoint_path = out / "last.pt"

    def checkpoint() -> dict:  # what --resume restores: weights, EMA, optimizer, data generator, counters
        return {
            "model": model_state(model),
            "ema": model_state(ema),
            "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(),
            "step": step,
            "train_seconds": train_seconds,
            "args": vars(args),
        }

    if args.resume or args.export_only:
        if not checkpoint_path.exists():
            raise SystemExit(f"--resume/--export-only need {checkpoint_path}; run without them to start fresh.")
        state = torch.load(checkpoint_path, map_location=args.device, weights_only=True)  # safe: tensors + plain state
        load_model_state(model, state["model"])
        load_model_state(ema, state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        step, train_seconds = state["step"], state["train_seconds"]
        print(f"resumed from {checkpoint_path} at step {step} ({train_seconds / 60:.1f} training minutes)", flush=True)
    n_params = sum(p.numel() for p in parameters(model))
    if args.measure:
        set_train(model, True)
        times = []
        for index in range(args.measure + 2):
            begin = time.perf_counter()
            x0, prompts = make_batch(index, args, weights, model)
            loss = flow_loss(model, x0.to(args.device), prompts, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            times.append(time.perf_counter() - begin)
        median_ms = 1000 * statistics.median(times[2:])
        print(
            json.dumps(
                {
                    "patch": args.patch_size,
                    "layers": args.num_layers,
                    "width": args.num_heads * args.head_dim,
                    "batch": args.batch_size,
                    "params": n_params,
                    "train_step_ms": round(median_ms, 1),
                }
            )
        )
        return 0
    log_path = out / "log.jsonl"
    if not args.export_only:
        (out / "args.json").write_text(json.dumps(vars(args), indent=2) + "\n")
        print_and_append(log_path, {"event": "start", "step": step, "params": n_params, "args": vars(args)})
        set_train(model, True)
        last_checkpoint = last_eval = time.time()
        segment_start, segment_steps_start = time.time(), step
        losses: list[float] = []
        budget = min(m for m in (args.max_minutes, args.stop_minutes, math.inf) if m > 0)
        while step < args.max_steps and train_seconds < 60 * budget:
            begin = time.time()
            current_lr = lr_at(step, args, train_seconds)
            set_lr(optimizer, current_lr)
            x0, prompts = make_batch(step, args, weights, model)
            loss = flow_loss(model, x0.to(args.device), prompts, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters(model), args.grad_clip)
            optimizer.step()
            decay = min(args.ema_decay, (1 + step) / (10 + step))
            with torch.no_grad():
                torch._foreach_lerp_(parameters(ema), parameters(model), 1.0 - decay)
            step += 1
            train_seconds += time.time() - begin
            losses.append(loss.item())
            if step % args.log_every == 0:
                rate = (time.time() - segment_start) / max(1, step - segment_steps_start)
                print_and_append(
                    log_path,
                    {
                        "step": step,
                        "loss": sum(losses) / len(losses),
                        "lr": current_lr,
                        "train_min": round(train_seconds / 60, 2),
                        "s_per_step": round(rate, 3),
                    },
                )
                losses = []
            if time.time() - last_checkpoint >= 60 * args.checkpoint_minutes or step == args.max_steps:
                atomic_torch_save(checkpoint(), checkpoint_path)
                last_checkpoint = time.time()
            if args.quick_eval_minutes and time.time() - last_eval >= 60 * args.quick_eval_minutes:
                metrics = run_eval(ema, args, per_family=40, seeds=[0])
                print_and_append(
                    log_path,
                    {"event": "quick_eval", "step": step, "train_min": round(train_seconds / 60, 2), **metrics},
                )
                last_eval = time.time()
        atomic_torch_save(checkpoint(), checkpoint_path)
    set_train(ema, False)
    provenance = {
        "train_steps": step,
        "train_minutes": round(train_seconds / 60, 1),
        "params": n_params,
        "training_command": "python " + " ".join(sys.argv),
    }
    save_shapeworld(ema, out / "model", extra_meta={"training": provenance})
    metrics = run_eval(ema, args, per_family=args.eval_per_family, seeds=list(range(args.eval_seeds)))
    print_and_append(
        log_path, {"event": "final_eval", "step": step, "train_min": round(train_seconds / 60, 2), **metrics}
    )
    return 0


if __name__ == "__main__":
    torch.set_num_interop_threads(1)  # allowed once per process, before any parallel work
    raise SystemExit(main())
