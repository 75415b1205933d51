"""The ShapeWorld grader as a reward (`flowrl.shapes.grader`): GenEval-style partial credit or strict pass."""

from __future__ import annotations

import torch

from flowrl.shapes.grader import grade


class ShapesReward:
    """Partial-credit score in [0, 1] of each image against its prompt (``strict=True``: 1.0 for a strict pass).

    Example:
        >>> from flowrl.shapes.render import render_prompts
        >>> images = render_prompts(["a red circle", "two blue squares"], seed=0)
        >>> ShapesReward()(images, ["a red circle", "a green triangle"]).tolist()[0]
        1.0
    """

    def __init__(self, *, strict: bool = False) -> None:
        self.strict = strict
        self.name = "shapes_strict" if strict else "shapes"

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, prompts: list[str], metadata: list[dict] | None = None) -> torch.Tensor:
        del metadata
        result = grade(images.detach().float().cpu(), list(prompts))
        return result.strict.float() if self.strict else result.score.float()
