"""GPU benchmark of the transformers flowrl trains: SD3.5-Medium and FLUX.1-dev at full size, random weights.

What it measures, per model, at one resolution (default 512x512) in bf16:

* rollout images/s: ``num_inference_steps`` no-grad forwards per image, with CFG for SD3.5-M (conditional and
  unconditional rows in one batch of 2B, as `flowrl.models.sd3`) and none for FLUX.1-dev (distilled guidance);
  VAE decode and text encoding are not included (prompts are cached, the VAE runs once per image);
* training edges/s: forward + backward of one trained edge batch (CFG rows included for SD3.5-M), for LoRA (the
  Flow-GRPO recipe: r 32 on SD3.5-M, r 64 on FLUX) and for full fine-tuning (gradients of every weight; no optimizer
  state, so memory is a lower bound of a real full fine-tuning step);
* peak memory of each phase (`torch.cuda.max_memory_allocated`);
* MFU = achieved FLOP/s / measured peak, the FLOPs counted by `torch.utils.flop_counter.FlopCounterMode` on the same
  call and the peak measured with a large bf16 matmul on this card (not a datasheet number).

The transformers are built from the published `transformer/config.json` values (of the hub repos
stabilityai/stable-diffusion-3.5-medium and black-forest-labs/FLUX.1-dev) and randomly initialised: no weights are
downloaded. Out-of-memory phases are recorded as "oom" and the run goes on.

    python scripts/bench_gpu.py                       # both models, 512x512, bf16; writes bench_gpu.json + a table
    python scripts/bench_gpu.py --models sd35m --batch 8 --gradient-checkpointing
    python scripts/bench_gpu.py --tiny --device cpu   # tiny configurations, seconds on a CPU (tests/models runs this)
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from flowrl.models.flux import LORA_TARGETS as FLUX_LORA_TARGETS
from flowrl.models.sd3 import LORA_TARGETS as SD3_LORA_TARGETS
from flowrl.models.transformer_configs import FLUX_DEV, FLUX_TINY, SD3_TINY, SD35M

SD3_LORA = SD3_LORA_TARGETS  # Flow-GRPO's attention projections
FLUX_LORA = FLUX_LORA_TARGETS  # plus the feed-forward layers


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def _time(fn: Callable[[], object], device: torch.device, *, warmup: int, iters: int) -> float:
    """Mean seconds per call after `warmup` calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / iters


def _flops(fn: Callable[[], object]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def matmul_peak(device: torch.device, dtype: torch.dtype, *, size: int, iters: int) -> float:
    """Measured dense matmul FLOP/s of this device in `dtype` (the MFU denominator)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    seconds = _time(lambda: a @ b, device, warmup=3, iters=iters)
    return 2.0 * size**3 / seconds


def build(kind: str, config: dict, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """The transformer, randomly initialised directly on `device` in `dtype` (no weights are read)."""
    from diffusers import FluxTransformer2DModel, SD3Transformer2DModel

    cls = SD3Transformer2DModel if kind == "sd35m" else FluxTransformer2DModel
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = cls(**config)
    finally:
        torch.set_default_dtype(default)
    return model.to(device=device, dtype=dtype).eval()


def inputs(
    kind: str,
    config: dict,
    *,
    batch: int,
    resolution: int,
    text_tokens: int,
    vae_factor: int,
    device: torch.device,
    dtype: torch.dtype,
) -> dict:
    """Keyword inputs of one forward over `batch` rows (random text embeddings of the published lengths)."""
    h = w = resolution // vae_factor  # latent size
    kw = dict(
        encoder_hidden_states=torch.randn(
            batch, text_tokens, config["joint_attention_dim"], device=device, dtype=dtype
        ),
        pooled_projections=torch.randn(batch, config["pooled_projection_dim"], device=device, dtype=dtype),
        return_dict=False,
    )
    if kind == "sd35m":
        kw["hidden_states"] = torch.randn(batch, config["in_channels"], h, w, device=device, dtype=dtype)
        kw["timestep"] = torch.full((batch,), 500.0, device=device, dtype=dtype)  # 1000 sigma
        return kw
    n = (h // 2) * (w // 2)  # packed 2x2 tokens
    rows = torch.arange(h // 2, device=device).repeat_interleave(w // 2)
    cols = torch.arange(w // 2, device=device).repeat(h // 2)
    kw["hidden_states"] = torch.randn(batch, n, config["in_channels"], device=device, dtype=dtype)
    kw["timestep"] = torch.full((batch,), 0.5, device=device, dtype=dtype)  # sigma
    kw["img_ids"] = torch.stack([torch.zeros_like(rows), rows, cols], dim=1).to(dtype)  # (n, 3)
    kw["txt_ids"] = torch.zeros(text_tokens, 3, device=device, dtype=dtype)
    kw["guidance"] = torch.full((batch,), 3.5, device=device, dtype=dtype)
    return kw


def bench_model(kind: str, args: argparse.Namespace, device: torch.device, dtype: torch.dtype, peak: float) -> dict:
    """Rollout and training throughput, memory and MFU of one model; phases that run out of memory say 'oom'."""
    config = {"sd35m": SD3_TINY if args.tiny else SD35M, "flux": FLUX_TINY if args.tiny else FLUX_DEV}[kind]
    cfg_rows = 2 if kind == "sd35m" else 1  # SD3.5-M runs CFG (uncond + cond in one batch); FLUX.1-dev does not
    text_tokens = (77 + 256 if kind == "sd35m" else 512) if not args.tiny else 16
    model = build(kind, config, device, dtype)
    params = sum(p.numel() for p in model.parameters())
    result: dict = {
        "model": kind,
        "params": params,
        "resolution": args.resolution,
        "batch": args.batch,
        "cfg_rows": cfg_rows,
        "num_inference_steps": args.steps,
    }
    kw = inputs(
        kind,
        config,
        batch=args.batch * cfg_rows,
        resolution=args.resolution,
        text_tokens=text_tokens,
        vae_factor=args.vae_factor,
        device=device,
        dtype=dtype,
    )

    def forward():
        return model(**kw)[0]

    try:
        _reset_peak(device)
        with torch.no_grad():
            seconds = _time(forward, device, warmup=args.warmup, iters=args.iters)
            flops = _flops(forward)
        result["rollout_images_per_s"] = args.batch / (seconds * args.steps)
        result["rollout_forward_s"] = seconds
        result["rollout_mfu"] = flops / seconds / peak
        result["rollout_peak_gib"] = _peak_gib(device)
    except torch.OutOfMemoryError:
        result["rollout_images_per_s"] = "oom"
    for mode in ("full", "lora"):  # full first: LoRA is added on top of the (then frozen) base
        try:
            result.update(_bench_train(kind, model, kw, mode, args, device, peak))
        except torch.OutOfMemoryError:
            result[f"train_{mode}_edges_per_s"] = "oom"
        model.zero_grad(set_to_none=True)
    return result  # the model is freed on return, before the next one is built


def _bench_train(kind, model, kw, mode, args, device, peak) -> dict:
    if mode == "lora":
        from peft import LoraConfig

        model.requires_grad_(False)
        rank = 32 if kind == "sd35m" else 64  # Flow-GRPO: SD3 r 32 / alpha 64, FLUX r 64 / alpha 128
        targets = SD3_LORA if kind == "sd35m" else FLUX_LORA
        model.add_adapter(
            LoraConfig(r=rank, lora_alpha=2 * rank, init_lora_weights="gaussian", target_modules=list(targets))
        )
    else:
        model.requires_grad_(True)
    if args.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    model.train()

    def step():
        out = model(**kw)[0]
        out.float().square().mean().backward()

    _reset_peak(device)
    seconds = _time(step, device, warmup=args.warmup, iters=args.iters)
    flops = _flops(step)
    model.eval()
    return {
        f"train_{mode}_edges_per_s": args.batch / seconds,
        f"train_{mode}_step_s": seconds,
        f"train_{mode}_mfu": flops / seconds / peak,
        f"train_{mode}_peak_gib": _peak_gib(device),
        f"train_{mode}_trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }


def table(results: list[dict]) -> str:
    """A markdown table of the results."""
    cols = [
        ("model", "model"),
        ("params", "params (M)"),
        ("rollout_images_per_s", "rollout img/s"),
        ("rollout_mfu", "rollout MFU"),
        ("rollout_peak_gib", "rollout GiB"),
        ("train_lora_edges_per_s", "LoRA edges/s"),
        ("train_lora_mfu", "LoRA MFU"),
        ("train_lora_peak_gib", "LoRA GiB"),
        ("train_full_edges_per_s", "full edges/s"),
        ("train_full_mfu", "full MFU"),
        ("train_full_peak_gib", "full GiB"),
    ]

    def fmt(key, v):
        if v is None:
            return "-"
        if key == "params":
            return f"{v / 1e6:.1f}"
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(c[1] for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in results:
        lines.append("| " + " | ".join(fmt(k, r.get(k)) for k, _ in cols) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="sd35m,flux", help="comma list of sd35m, flux")
    p.add_argument("--resolution", type=int, default=512, help="image side in pixels")
    p.add_argument("--batch", type=int, default=4, help="images (rollout) / edges (training) per forward, before CFG")
    p.add_argument("--steps", type=int, default=10, help="rollout steps per image (Flow-GRPO trains with 10)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    p.add_argument("--device", default="cuda")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--tiny", action="store_true", help="tiny configurations (CPU smoke test)")
    p.add_argument("--vae-factor", type=int, default=8, help="pixels per latent (8 for both VAEs; 2 in --tiny)")
    p.add_argument("--out", type=Path, default=Path("bench_gpu.json"))
    args = p.parse_args(argv)
    if args.tiny:
        args.vae_factor = 2
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench_gpu: no CUDA device; pass --device cpu (with --tiny) to smoke-test the script.", file=sys.stderr)
        return 2
    models = [m for m in args.models.split(",") if m]
    unknown = sorted(set(models) - {"sd35m", "flux"})
    if unknown:
        print(f"bench_gpu: unknown model(s) {unknown}; valid: sd35m, flux.", file=sys.stderr)
        return 2
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    size, iters = (256, 3) if args.tiny else (8192, 20)
    peak = matmul_peak(device, dtype, size=size, iters=iters)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    results = [bench_model(m, args, device, dtype, peak) for m in models]
    report = {
        "device": card,
        "dtype": args.dtype,
        "matmul_peak_tflops": peak / 1e12,
        "torch": torch.__version__,
        "gradient_checkpointing": args.gradient_checkpointing,
        "tiny": args.tiny,
        "results": results,
    }
    args.out.write_text(json.dumps(report, indent=2))
    print(
        f"{card}, {args.dtype}, measured matmul peak {peak / 1e12:.1f} TFLOP/s, {args.resolution}px, "
        f"batch {args.batch}"
    )
    print(table(results))
    print(f"bench_gpu: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
