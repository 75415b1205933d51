"""With EMA on, `final/` and `lora/` hold the EMA copy (flow_grpo `save_ckpt` swaps the EMA in before saving), the
weights every evaluation used; the raw ones stay in the last checkpoint.

Run: OMP_NUM_THREADS=1 pytest tests/models/test_ema_saved.py -q
"""

from __future__ import annotations

import torch
from safetensors.torch import load_file
from tiny_pipelines import tiny_run_overrides

from flowrl.runtime.checkpoint import latest_checkpoint
from flowrl.train.image import train
from flowrl.train.image_cli import load_config


def _run(folder, tmp_path, lora_rank: int):
    overrides = tiny_run_overrides(folder, tmp_path) + [
        "model.gradient_checkpointing=false",
        f"model.lora_rank={lora_rank}",
        "method.kwargs.group_size=2",
        "train.iterations=2",
        "train.prompts_per_iteration=1",
        "train.steps_per_epoch=1",
        "train.ema_decay=0.5",  # far from both the raw and the initial weights after 2 steps
        "eval.every=2",
        "eval.at_start=false",
        "optim.lr=1e-2",
        "run.name=r",
    ]
    result = train(load_config(preset="sd35m_flow_grpo_pickscore", overrides=overrides))
    checkpoint = latest_checkpoint(result.run_dir)
    ema = load_file(checkpoint / "ema.safetensors")  # {"<i>": tensor} in trained-parameter order
    return result.run_dir, [ema[str(i)] for i in range(len(ema))], load_file(checkpoint / "model.safetensors")


def test_final_transformer_holds_the_ema_weights(sd3_folder, tmp_path):
    from diffusers import SD3Transformer2DModel

    run_dir, ema, raw = _run(sd3_folder, tmp_path, lora_rank=0)
    final = SD3Transformer2DModel.from_pretrained(run_dir / "final" / "transformer")
    params = list(final.parameters())
    assert len(params) == len(ema)
    for p, e in zip(params, ema, strict=True):
        torch.testing.assert_close(p.detach().float(), e.float(), rtol=0, atol=0)
    # and not the raw weights, which moved away from the average
    names = [n for n, _ in final.named_parameters()]
    assert any(not torch.equal(raw[n].float(), e.float()) for n, e in zip(names, ema, strict=True) if n in raw)


def test_saved_lora_holds_the_ema_weights(sd3_folder, tmp_path):
    from diffusers import StableDiffusion3Pipeline

    run_dir, ema, raw = _run(sd3_folder, tmp_path, lora_rank=4)
    pipe = StableDiffusion3Pipeline.from_pretrained(sd3_folder, dtype=torch.float32)
    pipe.load_lora_weights(run_dir / "lora")
    loaded = [p for n, p in pipe.transformer.named_parameters() if "lora_" in n]  # the trainer's EMA order
    assert len(loaded) == len(ema)
    for p, e in zip(loaded, ema, strict=True):
        torch.testing.assert_close(p.detach().float(), e.float(), rtol=0, atol=0)
    assert not all(any(torch.equal(r.float(), e.float()) for r in raw.values() if r.shape == e.shape) for e in ema)
