"""Helpers shared by the SD3 and FLUX adapter tests: load an adapter from a tiny pipeline folder, run one GRPO step."""

from __future__ import annotations

import torch
from tiny_pipelines import PROMPTS, T5_TOKENS

from flowrl.flow.advantages import edge_advantages
from flowrl.flow.loss import evaluate_edges, policy_batch
from flowrl.flow.methods import build_method
from flowrl.flow.tree import rollout
from flowrl.grpo.reduce import Normalizer
from flowrl.grpo.variants import get_variant
from flowrl.models.flux import FluxAdapter
from flowrl.models.sd3 import SD3Adapter


def load(kind: str, folder, **kwargs):
    """The adapter of `kind` ('sd3' | 'flux') on a tiny folder at 32x32 (latents (16, 16, 16))."""
    defaults = dict(height=32, width=32, max_sequence_length=T5_TOKENS)
    if kind == "sd3":
        return SD3Adapter.from_folder(folder, **{"guidance_scale": 4.5, **defaults, **kwargs})
    return FluxAdapter.from_folder(folder, **{**defaults, **kwargs})


def grpo_step(adapter, method_name: str, *, lr: float = 1e-2, **method_kwargs) -> dict:
    """One rollout -> dummy reward (mean brightness) -> advantages -> evaluate_edges -> policy_loss -> AdamW step.

    Returns the loss metrics (on-policy, so the ratio must be 1)."""
    method = build_method(
        method_name, num_inference_steps=3, group_size=2, shift=adapter.default_shift, **method_kwargs
    )
    cond = adapter.encode(PROMPTS[:1])
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn((1, method.plan.num_roots, *adapter.latent_shape), generator=gen)  # (1, R, 16, h, w)
    with torch.no_grad():
        tree = rollout(adapter.velocity, method.plan, cond, noise, generator=gen)
    images = adapter.decode(tree.x[tree.leaves])  # (L, 3, H, W)
    rewards = images.mean(dim=(1, 2, 3))  # (L,) dummy reward
    adv = edge_advantages(method.advantage, tree, rewards, **method.advantage_kwargs)  # (E,)
    assert adv.abs().sum() > 0, "distinct leaves must give nonzero advantages"
    current = evaluate_edges(adapter.velocity, tree, cond)
    reference = None
    if method.kl_beta > 0:
        with adapter.reference():
            reference = evaluate_edges(adapter.reference_velocity, tree, cond)
    batch = policy_batch(tree, current, adv, reference=reference)
    objective = get_variant("flow_grpo", clip_range=method.clip_range, beta=method.kl_beta).objective
    E = float(adv.numel())
    loss, metrics = _loss(objective, batch, E)
    optimizer = torch.optim.AdamW(adapter.trainable_parameters(), lr=lr)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return metrics


def _loss(objective, batch, num_edges: float):
    from flowrl.grpo.objective import policy_loss

    return policy_loss(objective, batch, norm=Normalizer(num_tokens=num_edges, num_sequences=num_edges))
