"""Generate evaluation samples from a ShapeWorld model folder (the base model or a run's ``final/``) with fixed
seeds: prompt i's samples come from one batch drawn with ``torch.Generator().manual_seed(seed + i)``, so a prompt's
images do not depend on the other prompts or on how many there are."""

from __future__ import annotations

from pathlib import Path

import torch

from flowrl.train.progress import progress


def generate_shapeworld(
    model_folder: str | Path,
    prompts: list[str],
    *,
    samples_per_prompt: int,
    seed: int,
    num_inference_steps: int | None = None,
    guidance_scale: float | None = None,
    device: str = "cpu",
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
        show_progress (`bool`, *optional*): None shows the bar only on a terminal.

    Returns:
        `(images, ids)`: P * samples_per_prompt `(3, H, W)` images in [0, 1], and their (prompt index, seed).
    """
    from flowrl.shapes.model import load_shapeworld
    from flowrl.shapes.sampling import sample_images

    if samples_per_prompt < 1:
        raise ValueError(f"samples_per_prompt must be >= 1, got {samples_per_prompt}.")
    model = load_shapeworld(model_folder, device=device)
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
