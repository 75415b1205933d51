"""Step-dependent hyper-parameters of the LLM GRPO variants (outside the pure functions; torch-free objects).

A trainer evaluates ``schedule(step)`` once per step and passes the number to the pure functions (or replaces an
`Objective`'s ``beta`` with `flowrl.grpo.variants_llm.with_beta`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LinearSchedule:
    """``v(s) = start + (end - start) min(1, s / ramp_steps)``: a linear ramp, then constant.

    GRPO-D (arXiv 2503.16081) KL coefficient: small early (explore), larger later (exploit), ``start < end``; the
    paper's exact curve is not published in the sources we could read, so the linear ramp is our reading.
    KDRL (arXiv 2506.02208) anneals its teacher-KL coefficient from 5e-3 to 1e-3 (``start > end``).
    D³S (arXiv 2509.22115) relaxes its keep ratios toward 1 (``start < end = 1``; curve our reading).
    """

    start: float
    end: float
    ramp_steps: int

    def __post_init__(self) -> None:
        if self.ramp_steps < 1:
            raise ValueError(f"`ramp_steps` must be >= 1 (the number of steps of the ramp), got {self.ramp_steps}.")

    def __call__(self, step: int) -> float:
        return self.start + (self.end - self.start) * min(1.0, step / self.ramp_steps)


@dataclass(frozen=True)
class ExponentialBudget:
    """Train Long, Think Short (arXiv 2508.08940) token budget: ``B(s) = max(min_budget, B0 gamma^floor(s / every))``.

    ``B0 = 256`` (paper); ``gamma`` and ``every`` are our reading (docs/papers_llm.md).
    """

    initial: float = 256.0
    gamma: float = 0.9
    every: int = 100
    min_budget: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.gamma <= 1.0 or self.every < 1:
            raise ValueError(f"Need 0 < gamma <= 1 and every >= 1, got gamma={self.gamma}, every={self.every}.")

    def __call__(self, step: int) -> float:
        return max(self.min_budget, self.initial * self.gamma ** (step // self.every))
