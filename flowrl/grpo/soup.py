"""Weight soups (SALSA: the reference model of the KL term is an average of SFT models). Pure functions on state
dicts; the trainer builds the reference model from the result. Sources: docs/papers_llm.md."""

from __future__ import annotations

import torch


def weight_soup(
    states: list[dict[str, torch.Tensor]], *, weights: list[float] | None = None
) -> dict[str, torch.Tensor]:
    """SALSA (arXiv 2411.01798, section 3): ``theta_soup = sum_k w_k theta_k`` over independently fine-tuned SFT
    models with the same architecture (uniform ``w_k = 1/K`` by default; SALSA uses two models, ``w = (0.5, 0.5)``).
    Averaged in float32, returned in each tensor's dtype; integer buffers are taken from the first state.

    Raises:
        ValueError: fewer than two states, mismatched keys or shapes, or weights that do not sum to 1.
    """
    if len(states) < 2:
        raise ValueError(f"A soup needs at least two models, got {len(states)}.")
    w = [1.0 / len(states)] * len(states) if weights is None else list(weights)
    if len(w) != len(states) or abs(sum(w) - 1.0) > 1e-6:
        raise ValueError(f"Need one weight per model summing to 1, got {w} for {len(states)} models.")
    keys = states[0].keys()
    for k, s in enumerate(states[1:], start=1):
        if s.keys() != keys:
            raise ValueError(f"Model {k} has different parameter names than model 0: not the same architecture.")
    out = {}
    for name, first in states[0].items():
        if any(s[name].shape != first.shape for s in states):
            raise ValueError(f"Parameter {name!r} has different shapes across the models.")
        if not first.dtype.is_floating_point:
            out[name] = first.clone()
            continue
        out[name] = sum(wk * s[name].float() for wk, s in zip(w, states, strict=True)).to(first.dtype)
    return out
