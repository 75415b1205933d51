"""The ShapeWorld model as a policy: the SD3 adapter on the shipped pipeline, plus what the grammar needs.

ShapeWorld v2 is a real `StableDiffusion3Pipeline` (`flowrl.shapes.model`), so the CPU default trains through the
very adapter that trains SD3.5-M (`flowrl.models.sd3.SD3Adapter`: the same CFG forward, cached prompts, LoRA
through peft, reference policy, VAE decode). What stays ShapeWorld-specific is small:

* prompts are checked against the grammar's words before encoding (a CLIP BPE tokenizer would otherwise split an
  unknown word into characters silently);
* the pipeline appends `max_sequence_length` zero "T5" tokens; the model was trained with
  `meta["max_sequence_length"]` of them (0), so the adapter uses that number;
* LoRA also targets the feed-forward projections (the tiny model's capacity is mostly there);
* a fully fine-tuned model is saved as a complete ShapeWorld folder (`final/`), which `flowrl sample --model`
  and `StableDiffusion3Pipeline.from_pretrained` load.
"""

from __future__ import annotations

from pathlib import Path

import torch

from flowrl.models.sd3 import LORA_TARGETS as SD3_LORA_TARGETS
from flowrl.models.sd3 import SD3Adapter
from flowrl.shapes.model import load_shapeworld, save_shapeworld
from flowrl.shapes.tokenizer import check_words

# Flow-GRPO's SD3 attention projections plus the joint blocks' feed-forward layers.
LORA_TARGETS = (*SD3_LORA_TARGETS, "ff.net.0.proj", "ff.net.2")


def load_shapeworld_adapter(
    folder: str | Path,
    *,
    guidance_scale: float,
    lora_rank: int = 0,
    lora_alpha: float = 16.0,
    device: str | torch.device = "cpu",
    **kwargs,
) -> SD3Adapter:
    """Load a ShapeWorld folder (e.g. `assets/shapeworld`) and wrap its pipeline in the SD3 adapter.

    Args:
        folder: a folder written by `flowrl.shapes.save_shapeworld` (a pipeline folder + flowrl_shapeworld.json).
        guidance_scale: CFG scale of the adapter's velocity (the shipped model: 4.0).
        lora_rank, lora_alpha: 0 = full fine-tuning with a frozen reference copy; > 0 = LoRA on `LORA_TARGETS`.
        device: where to run.
        kwargs: further `SD3Adapter` keywords (gradient_checkpointing, mixed_precision, reference_copy, ...).

    Returns:
        `SD3Adapter` at the model's fixed resolution, with the grammar's word check on every new prompt.
    """
    model = load_shapeworld(folder, device=device)
    size = int(model.meta["image_size"])

    def write_final(out: Path) -> None:
        save_shapeworld(model, out, extra_meta={"finetuned_by": "flowrl train", "base_model": str(folder)})

    return SD3Adapter(
        model.pipe,
        guidance_scale=guidance_scale,
        height=size,
        width=size,
        lora_rank=lora_rank,
        lora_alpha=lora_alpha,
        lora_targets=LORA_TARGETS,
        max_sequence_length=int(model.meta["max_sequence_length"]),
        prompt_check=check_words,
        final_writer=write_final,
        **kwargs,
    )
