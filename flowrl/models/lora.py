"""Load a LoRA saved in diffusers' layout onto a transformer for inference.

The layout is what ``StableDiffusion3Pipeline.save_lora_weights`` / ``FluxPipeline.save_lora_weights`` write and
what `flowrl train` leaves in a run's ``lora/``: ``pytorch_lora_weights.safetensors`` with ``transformer.``-prefixed
peft keys and, when saved with it, the adapter metadata (rank, alpha, targets).
"""

from __future__ import annotations

from pathlib import Path

import torch

LORA_FILE = "pytorch_lora_weights.safetensors"
ADAPTER = "loaded_lora"


def lora_file(folder: str | Path) -> Path:
    """The weights file of a LoRA folder (the folder itself may also be the file); raises when it is missing."""
    path = Path(folder)
    file = path if path.is_file() else path / LORA_FILE
    if not file.is_file():
        raise FileNotFoundError(
            f"No LoRA at {file}: pass a folder holding {LORA_FILE} (a run's lora/, or any diffusers LoRA folder)."
        )
    return file


def load_lora(transformer: torch.nn.Module, folder: str | Path, *, lora_alpha: float | None = None) -> None:
    """Load a diffusers-layout LoRA into `transformer` (SD3, FLUX or ShapeWorld), at scale ``alpha / rank``.

    The scale comes from the adapter metadata saved with the weights (diffusers' ``lora_adapter_metadata``). A file
    saved without it does not record alpha; then `lora_alpha` must be given (the run's ``model.lora_alpha``) and the
    adapter is weighted ``lora_alpha / rank`` (diffusers would load it at alpha = rank, scale 1).

    Args:
        transformer (`torch.nn.Module`): a diffusers transformer (`SD3Transformer2DModel`, `FluxTransformer2DModel`).
        folder (`str | Path`): the folder holding ``pytorch_lora_weights.safetensors``, or that file.
        lora_alpha (`float`, *optional*): alpha for files without metadata; ignored when the metadata has it.
    """
    from safetensors import safe_open

    file = lora_file(folder)
    with safe_open(str(file), framework="pt") as f:
        has_metadata = "lora_adapter_metadata" in (f.metadata() or {})
    if not has_metadata and lora_alpha is None:
        raise ValueError(
            f"{file} was saved without LoRA metadata, so its alpha (scale = alpha / rank) is unknown; pass "
            "--lora-alpha with the run's LoRA alpha (model.lora_alpha in the run's config.yaml)."
        )
    transformer.load_lora_adapter(str(file.parent), prefix="transformer", weight_name=file.name, adapter_name=ADAPTER)
    if not has_metadata:
        rank = transformer.peft_config[ADAPTER].r
        transformer.set_adapters([ADAPTER], weights=[lora_alpha / rank])
    transformer.requires_grad_(False)
