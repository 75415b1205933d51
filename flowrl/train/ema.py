"""Exponential moving average of trained weights, swapped in for evaluation."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


class EMA:
    """``ema <- decay * ema + (1 - decay) * param`` after every optimizer step (fp32 copies on the same device)."""

    def __init__(self, params: list[torch.nn.Parameter], *, decay: float) -> None:
        self.params = params
        self.decay = decay
        self.shadow = [p.detach().float().clone() for p in params]

    @torch.no_grad()
    def update(self, decay: float | None = None) -> None:
        """One step of the average; `decay` overrides the constructor's for this step (a decay schedule)."""
        d = self.decay if decay is None else decay
        for s, p in zip(self.shadow, self.params, strict=True):
            s.lerp_(p.detach().float(), 1.0 - d)

    @contextlib.contextmanager
    @torch.no_grad()
    def swapped(self) -> Iterator[None]:
        """Inside the context the parameters hold the EMA values; the trained values come back afterwards."""
        saved = [p.detach().clone() for p in self.params]
        for p, s in zip(self.params, self.shadow, strict=True):
            p.copy_(s.to(p.dtype))
        try:
            yield
        finally:
            for p, v in zip(self.params, saved, strict=True):
                p.copy_(v)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """``{"<index>": tensor}`` in parameter order (plain tensors: safetensors-friendly)."""
        return {str(i): s.clone() for i, s in enumerate(self.shadow)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if len(state) != len(self.shadow):
            raise ValueError(f"EMA state holds {len(state)} tensors, the model has {len(self.shadow)} trained ones.")
        for i, s in enumerate(self.shadow):
            s.copy_(state[str(i)])
