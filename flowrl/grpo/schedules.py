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


class HintPlanner:
    """Scaf-GRPO's tiered hints (arXiv 2510.19807, section 3.2): no hints during the guidance-exemption phase (the
    first ``exemption_steps``); afterwards a true-hard prompt (whole group failed) is re-rolled with hints escalating
    through ``tiers`` (Knowledge -> Planning -> Solution), stopping at the first tier that yields a success.

    The exemption length is reported as "an early fraction of training": the fraction is the caller's
    ``exemption_steps`` (our reading, docs/papers_llm.md). The planner holds, per prompt, the lowest tier that last
    worked, and starts there next time.
    """

    def __init__(
        self, *, tiers: tuple[str, ...] = ("knowledge", "planning", "solution"), exemption_steps: int
    ) -> None:
        if not tiers or exemption_steps < 0:
            raise ValueError(f"Need at least one tier and exemption_steps >= 0, got {tiers}, {exemption_steps}.")
        self.tiers, self.exemption_steps = tiers, exemption_steps
        self.start_tier: dict[int, int] = {}

    def tiers_to_try(self, key: int, *, step: int) -> tuple[str, ...]:
        """Hint tiers to try in order for prompt `key` at `step` (empty during the exemption phase)."""
        if step < self.exemption_steps:
            return ()
        return self.tiers[self.start_tier.get(key, 0) :]

    def report(self, key: int, tier: str) -> None:
        """The guided rollout at `tier` succeeded: the prompt starts there next time."""
        self.start_tier[key] = self.tiers.index(tier)
