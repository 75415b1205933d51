"""Per-prompt group sizes of the text trainer (`hooks.group_sizes`): Knapsack RL's exact knapsack over the prompts'
last success rates, and GVM-RAFT's allocation from a pre-sample's acceptance rates and gradient norms. The
allocations are `flowrl.grpo.budget`; these are the small stateful objects around them, built once per run."""

from __future__ import annotations

from collections.abc import Callable

import torch

from flowrl.grpo.budget import gvm_allocation, knapsack_allocation

Presample = Callable[[int], tuple[torch.Tensor, torch.Tensor]]  # n0 -> (accept rates (P,), gradient norms (P,))


class KnapsackSizes:
    """Knapsack RL group sizes (`budget.knapsack_allocation`): per prompt the success rate of its last visit
    (``prior`` before the first), the step's budget ``prompts x group_size`` split by the exact knapsack."""

    def __init__(self, *, n_min: int = 2, n_max: int = 16, prior: float = 0.5) -> None:
        if n_min < 2 or n_max < n_min:
            raise ValueError(f"Knapsack group sizes need 2 <= n_min <= n_max (a group needs 2), got {n_min}, {n_max}.")
        self.n_min, self.n_max, self.prior = n_min, n_max, prior
        self.success: dict[int, float] = {}

    def sizes(self, keys: list[int], *, budget: int, presample: Presample) -> list[int]:
        del presample  # the knapsack uses the success rates of earlier visits
        rates = torch.tensor([self.success.get(k, self.prior) for k in keys])
        return knapsack_allocation(rates, budget=budget, n_min=self.n_min, n_max=self.n_max).tolist()

    def report(self, keys: list[int], outcome: torch.Tensor, group_index: torch.Tensor) -> None:
        """Fold the step's outcomes in; `group_index` `(N,)` is each row's position in `keys`."""
        for j, k in enumerate(keys):
            rows = group_index == j
            if bool(rows.any()):
                self.success[k] = float(outcome[rows].float().mean())


class GVMSizes:
    """GVM-RAFT group sizes (`budget.gvm_allocation`, arXiv 2505.02391): each step pre-samples ``n0`` completions per
    prompt, measures its acceptance rate (reward.names[0] > 0) and the gradient norm of its accepted samples' mean
    log-likelihood (on the output head), and splits the budget ``n_i ∝ G_i / sqrt(p_i + alpha / p_i^(beta - 1))``.
    A prompt given fewer than 2 completions is dropped from the step (a group needs 2); when no prompt is usable
    (nothing accepted) every prompt gets ``fallback`` completions. ``n0 = 8``, alpha 1e-3, beta 2 are the code's."""

    def __init__(self, *, n0: int = 8, alpha: float = 1e-3, beta: float = 2.0, fallback: int = 8) -> None:
        if n0 < 1 or fallback < 2:
            raise ValueError(f"GVM needs n0 >= 1 pre-samples and a fallback group of >= 2, got {n0}, {fallback}.")
        self.n0, self.alpha, self.beta, self.fallback = n0, alpha, beta, fallback

    def sizes(self, keys: list[int], *, budget: int, presample: Presample) -> list[int]:
        rates, norms = presample(self.n0)
        n = gvm_allocation(rates, norms, budget=budget, alpha=self.alpha, beta=self.beta)
        if int((n >= 2).sum()) == 0:
            return [self.fallback] * len(keys)
        return torch.where(n >= 2, n, torch.zeros_like(n)).tolist()

    def report(self, keys: list[int], outcome: torch.Tensor, group_index: torch.Tensor) -> None:
        del keys, outcome, group_index  # GVM measures afresh each step


GROUP_SIZES: dict[str, Callable[..., KnapsackSizes | GVMSizes]] = {"knapsack": KnapsackSizes, "gvm": GVMSizes}
