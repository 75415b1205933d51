"""Dynamic-TreeRPO's LayerTuning-RL on ShapeWorld: a supervised flow-matching term inside RL, weighted per prompt
by how badly the policy does on it, plus reward-adaptive clipping bounds.

Dynamic-TreeRPO (arXiv 2509.23352) publishes only the idea (abstract): "the SFT loss is recast as a dynamically
weighted process-reward term inside RL, combined with dynamic-adaptive clipping bounds" so that SFT does not disrupt
exploration. No formula, weight or data source is published ([?] in docs/flow_methods.md, dynamic_treerpo). This file
is **our reading**, made concrete where ShapeWorld allows it (ground-truth renders exist for every prompt):

* SFT term of prompt p: the rectified-flow loss on rendered targets of p,
  ``L_p = mean || v_theta(x_s, s, c_p) - (eps - x0) ||^2`` with ``x_s = (1 - s) x0 + s eps``, s ~ U(0, 1)
  (the conditional velocity, no CFG: the same loss the base model was pretrained with);
* dynamic weight ("as a process reward"): ``lambda_p = lambda_0 * (1 - mean leaf reward of p)``, rewards in
  [0, 1]; prompts the policy already solves get no supervision, failed ones the most;
* adaptive clip bounds ("guided by trajectory rewards"): ``eps_i = clip_range * (1 + scale * tanh|A_i|)``, wider
  bounds for edges whose trajectory carries a strong advantage signal.
"""

from __future__ import annotations

import torch

from flowrl.flow.velocity import take_rows
from flowrl.shapes.render import render_prompts


def reward_adaptive_clip_bounds(
    adv: torch.Tensor, *, clip_range: float, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``eps_i = clip_range * (1 + scale * tanh |A_i|)`` for both sides (our reading, see the module docstring)."""
    eps = clip_range * (1.0 + scale * torch.tanh(adv.detach().abs()))
    return eps, eps


def prompt_weight(leaf_rewards: torch.Tensor, *, base: float) -> float:
    """``base * (1 - mean reward)``, rewards clamped to [0, 1]."""
    return base * (1.0 - float(leaf_rewards.float().clamp(0.0, 1.0).mean()))


def flow_matching_loss(
    velocity,
    encode_images,
    prompt: str,
    cond,
    *,
    num_targets: int,
    image_size: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """Rectified-flow loss of the conditional velocity on `num_targets` rendered scenes of `prompt`.

    Args:
        velocity: ``(x, sigma, cond) -> v`` without guidance.
        encode_images: images (K, 3, H, W) in [0, 1] -> model-space targets (the adapter's VAE encoder).
        cond: the prompt's conditioning row (batch 1); repeated to the targets.
        image_size: render size in pixels.
        generator: draws the render seed, sigma and noise.
    """
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    x0 = encode_images(render_prompts([prompt] * num_targets, seed=seed, size=image_size))  # (K, C, h, w)
    sigma = torch.rand(num_targets, generator=generator)  # (K,)
    noise = torch.randn(x0.shape, generator=generator)
    s = sigma.view(-1, 1, 1, 1)
    x = (1.0 - s) * x0 + s * noise
    rows = take_rows(cond, torch.zeros(num_targets, dtype=torch.long))  # the prompt's row, K times
    v = velocity(x, sigma, rows)
    return ((v.float() - (noise - x0)) ** 2).mean()
