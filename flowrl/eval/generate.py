"""Generate samples from a loaded model (`flowrl.eval.load_model`) with fixed seeds, through its adapter.

Prompt i's samples come from one batch whose initial noise is drawn with ``torch.Generator().manual_seed(seed + i)``,
so a prompt's images do not depend on the other prompts or on how many there are. Sampling is the Euler ODE on the
model's time grid (`LoadedModel.grid`: the pipeline's own, or the run's ``method.grid``, with the adapter's
`default_shift`), run by the tree sampler with one leaf per root, as the trainer's evaluation does.
"""

from __future__ import annotations

import torch

from flowrl.eval.load_model import LoadedModel
from flowrl.flow.grid import named_grid
from flowrl.flow.plan import RolloutPlan, StepSpec
from flowrl.flow.tree import rollout
from flowrl.runtime.progress import progress


@torch.no_grad()
def sample_prompt(
    model: LoadedModel, prompt: str, *, num_samples: int, seed: int, num_inference_steps: int, guidance_scale: float
) -> torch.Tensor:
    """`num_samples` images of one prompt, noise seeded by `seed`: `(S, 3, H, W)` float32 in [0, 1] on the CPU."""
    adapter = model.adapter
    plan = RolloutPlan(
        named_grid(model.grid, num_inference_steps, shift=adapter.default_shift),
        tuple(StepSpec() for _ in range(num_inference_steps)),
    )
    device = next(adapter.transformer.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn((num_samples, 1, *adapter.latent_shape), generator=generator).to(device)  # (S, 1, *latent)
    saved, adapter.guidance_scale = adapter.guidance_scale, guidance_scale
    try:
        tree = rollout(adapter.velocity, plan, adapter.encode([prompt] * num_samples), noise)  # one leaf per root
    finally:
        adapter.guidance_scale = saved
    return adapter.decode(tree.x[tree.leaves])  # (S, 3, H, W)


def generate(
    model: LoadedModel,
    prompts: list[str],
    *,
    samples_per_prompt: int,
    seed: int,
    num_inference_steps: int | None = None,
    guidance_scale: float | None = None,
    show_progress: bool | None = None,
    desc: str = "flowrl: sampling",
) -> tuple[list[torch.Tensor], list[tuple[int, int]]]:
    """Sample `samples_per_prompt` images per prompt.

    Args:
        model (`LoadedModel`): from `flowrl.eval.load_model.load_model`.
        prompts (`list[str]`): P prompts.
        samples_per_prompt (`int`): images per prompt.
        seed (`int`): prompt i uses seed ``seed + i``.
        num_inference_steps (`int`, *optional*), guidance_scale (`float`, *optional*): default the model's.
        show_progress (`bool`, *optional*): None shows the bar only on a terminal.
        desc (`str`): the progress bar's label.

    Returns:
        `(images, ids)`: P * samples_per_prompt `(3, H, W)` images in [0, 1], and their (prompt index, seed).
    """
    if samples_per_prompt < 1:
        raise ValueError(f"samples_per_prompt must be >= 1, got {samples_per_prompt}.")
    steps = num_inference_steps or model.num_inference_steps
    guidance = model.guidance_scale if guidance_scale is None else guidance_scale
    model.adapter.encode(sorted(set(prompts)))  # fail before sampling, naming any word the tokenizer does not know
    images, ids = [], []
    disable = None if show_progress is None else not show_progress
    with progress(len(prompts), desc=desc, disable=disable) as bar:
        for i, prompt in enumerate(prompts):
            out = sample_prompt(
                model,
                prompt,
                num_samples=samples_per_prompt,
                seed=seed + i,
                num_inference_steps=steps,
                guidance_scale=guidance,
            )  # (S, 3, H, W)
            images.extend(out)
            ids.extend([(i, seed + i)] * samples_per_prompt)
            bar.update(1)
    return images, ids
