"""Generate evaluation samples from a ShapeWorld model folder (the base model or a run's ``final/``, optionally with
a run's ``lora/`` adapter) with fixed seeds: prompt i's samples come from one batch drawn with
``torch.Generator().manual_seed(seed + i)``, so a prompt's images do not depend on the other prompts or on how many
there are."""

from __future__ import annotations

from pathlib import Path

import torch

from flowrl.train.progress import progress

LORA_FILE = "pytorch_lora_weights.safetensors"
ADAPTER = "eval_lora"


def load_lora(transformer, folder: str | Path, *, lora_alpha: float | None = None) -> None:
    """Load a diffusers-layout LoRA (``transformer.``-prefixed keys in ``pytorch_lora_weights.safetensors``) into
    `transformer`, at scale ``alpha / rank``.

    The scale comes from the adapter metadata saved with the weights (diffusers' ``lora_adapter_metadata``). A file
    saved without it does not record alpha; then `lora_alpha` must be given (the run's LoRA alpha) and the adapter
    is weighted ``lora_alpha / rank`` (diffusers loads it at alpha = rank, scale 1).

    Args:
        transformer: the `SD3Transformer2DModel` of a ShapeWorld model.
        folder (`str | Path`): the folder holding ``pytorch_lora_weights.safetensors`` (a run's ``lora/``).
        lora_alpha (`float`, *optional*): alpha for files without metadata; ignored when the metadata has it.
    """
    from safetensors import safe_open

    file = Path(folder) / LORA_FILE
    if not file.is_file():
        raise FileNotFoundError(f"No LoRA at {file}; pass the run's lora/ folder, which holds {LORA_FILE}.")
    with safe_open(str(file), framework="pt") as f:
        has_metadata = "lora_adapter_metadata" in (f.metadata() or {})
    if not has_metadata and lora_alpha is None:
        raise ValueError(
            f"{file} was saved without LoRA metadata, so its alpha (scale = alpha / rank) is unknown; pass "
            "--lora-alpha with the run's LoRA alpha (the resolved config in the run folder has it)."
        )
    transformer.load_lora_adapter(str(folder), prefix="transformer", weight_name=LORA_FILE, adapter_name=ADAPTER)
    if not has_metadata:
        rank = transformer.peft_config[ADAPTER].r
        transformer.set_adapters([ADAPTER], weights=[lora_alpha / rank])


def generate_shapeworld(
    model_folder: str | Path,
    prompts: list[str],
    *,
    samples_per_prompt: int,
    seed: int,
    num_inference_steps: int | None = None,
    guidance_scale: float | None = None,
    device: str = "cpu",
    lora: str | Path | None = None,
    lora_alpha: float | None = None,
    show_progress: bool | None = None,
) -> tuple[list[torch.Tensor], list[tuple[int, int]]]:
    """Sample `samples_per_prompt` images per prompt with the Euler ODE (`flowrl.shapes.sampling.sample_images`).

    Args:
        model_folder (`str | Path`): a folder written by `save_shapeworld` (base model or a run's ``final/``).
        prompts (`list[str]`): P prompts in ShapeWorld's grammar.
        samples_per_prompt (`int`): images per prompt.
        seed (`int`): prompt i uses seed ``seed + i``.
        num_inference_steps (`int`, *optional*), guidance_scale (`float`, *optional*): default the model's metadata.
        device (`str`, defaults to "cpu"): where the model runs.
        lora (`str | Path`, *optional*): a run's ``lora/`` folder to load on top of the model (`load_lora`).
        lora_alpha (`float`, *optional*): LoRA alpha for adapter files saved without metadata.
        show_progress (`bool`, *optional*): None shows the bar only on a terminal.

    Returns:
        `(images, ids)`: P * samples_per_prompt `(3, H, W)` images in [0, 1], and their (prompt index, seed).
    """
    from flowrl.shapes.model import load_shapeworld
    from flowrl.shapes.sampling import sample_images

    if samples_per_prompt < 1:
        raise ValueError(f"samples_per_prompt must be >= 1, got {samples_per_prompt}.")
    model = load_shapeworld(model_folder, device=device)
    if lora is not None:
        load_lora(model.transformer, lora, lora_alpha=lora_alpha)
    steps = num_inference_steps or model.meta["num_inference_steps"]
    cfg = model.meta["guidance_scale"] if guidance_scale is None else guidance_scale
    images, ids = [], []
    disable = None if show_progress is None else not show_progress
    with progress(len(prompts), desc="flowrl eval: sampling", disable=disable) as bar:
        for i, prompt in enumerate(prompts):
            out = sample_images(
                model,
                [prompt] * samples_per_prompt,
                generator=torch.Generator().manual_seed(seed + i),
                num_inference_steps=steps,
                guidance_scale=cfg,
                shift=model.meta["shift"],
            )  # (S, 3, H, W)
            images.extend(out)
            ids.extend([(i, seed + i)] * samples_per_prompt)
            bar.update(1)
    return images, ids
