"""Per-prompt state that outlives a step (outside the pure functions; torch only).

A trainer calls ``update(...)`` once per step with the step's samples and passes the returned tensors into the
pure advantage functions of `flowrl.grpo.advantages_llm`. Keys are integer prompt ids that must be stable across
steps (a dataset row index, not a position in the step's batch).
"""

from __future__ import annotations

import torch

from flowrl.grpo.advantages_llm import smooth_advantages
from flowrl.grpo.reward_weights import gradient_influence, mirror_descent_weights


class CumulativeRewardStats:
    """DCPO's per-prompt cumulative reward statistics (arXiv 2509.02333, section 3.2), merged once per step from the
    step's group mean ``m`` and unbiased std ``s`` with equal weight per step, as lime-RL/DCPO
    `core_algos.get_mean_std` does. With ``i`` the number of steps that sampled the prompt, this one included::

        mean_i = ((i - 1) mean_{i-1} + m) / i
        var_i = ((i - 1) std_{i-1}^2 + s^2 + (i - 1) / i (m - mean_{i-1})^2) / i      (i = 1: mean_1 = m, std_1 = s)

    Calling the tracker is an advantage function ``(rewards, group_ids) -> A`` (`smooth_advantages`), so it can be
    a `Variant`'s `advantages`.
    """

    def __init__(self) -> None:
        self.state: dict[int, tuple[float, float, int]] = {}  # key -> (mean, std, times seen)

    def update(self, rewards: torch.Tensor, group_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Merge this step's group statistics per key; returns per-sample `(cum_mean, cum_std, times_seen)`, each
        `(B,)` float32."""
        r = rewards.detach().float().cpu()
        keys = group_ids.cpu().tolist()
        for key in dict.fromkeys(keys):
            vals = r[torch.tensor([k == key for k in keys])]
            m = float(vals.mean())
            s = float(vals.std()) if vals.numel() > 1 else 0.0
            old_mean, old_std, prev = self.state.get(key, (0.0, 0.0, 0))
            i = prev + 1
            if prev == 0:
                self.state[key] = (m, s, i)
            else:
                var = (prev * old_std**2 + s**2 + prev / i * (m - old_mean) ** 2) / i
                self.state[key] = ((prev * old_mean + m) / i, var**0.5, i)
        rows = [self.state[k] for k in keys]
        mean, std, seen = (torch.tensor([row[j] for row in rows], dtype=torch.float32) for j in range(3))
        return mean.to(rewards.device), std.to(rewards.device), seen.to(rewards.device)

    def __call__(self, rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
        """Update with this step's rewards and return DCPO's smooth advantages `(B,)`."""
        cum_mean, cum_std, seen = self.update(rewards, group_ids)
        return smooth_advantages(rewards, group_ids, cum_mean=cum_mean, cum_std=cum_std, times_seen=seen)


class BetaValueTracker:
    """SPO's per-prompt success estimate (arXiv 2509.13232, section 3.1): a discounted Beta posterior.

    ``v(x) = a / (a + b)``; after a reward ``r`` in [0, 1]: ``a <- rho a + r``, ``b <- rho b + (1 - r)`` with
    ``rho = clip(2^(-D / D_half), rho_min, rho_max)`` and ``D`` an estimate of the KL between the current policy and
    the one that last acted on x. ``D_half = 0.06``, ``rho in [0.875, 0.96]`` are our reading (docs/papers_llm.md);
    ``prior`` initialises an unseen prompt (SPO initialises from offline samples of the base policy: pass their
    success rate to `set_prior`).
    """

    def __init__(
        self,
        *,
        d_half: float = 0.06,
        rho_min: float = 0.875,
        rho_max: float = 0.96,
        prior: tuple[float, float] = (1.0, 1.0),
    ) -> None:
        if not 0.0 < rho_min <= rho_max <= 1.0:
            raise ValueError(f"Need 0 < rho_min <= rho_max <= 1, got rho_min={rho_min}, rho_max={rho_max}.")
        if d_half <= 0:
            raise ValueError(f"`d_half` must be > 0 (SPO reading: 0.06), got {d_half}.")
        self.d_half, self.rho_min, self.rho_max, self.prior = d_half, rho_min, rho_max, prior
        self.state: dict[int, tuple[float, float]] = {}

    def set_prior(self, key: int, *, success_rate: float, num_samples: int) -> None:
        """Offline initialisation: ``a = n p``, ``b = n (1 - p)`` from ``n`` base-policy samples."""
        self.state[key] = (num_samples * success_rate, num_samples * (1 - success_rate))

    def values(self, keys: torch.Tensor) -> torch.Tensor:
        """``v(x)`` per sample `(B,)` float32, before this step's update."""
        ab = [self.state.get(k, self.prior) for k in keys.cpu().tolist()]
        return torch.tensor([a / (a + b) for a, b in ab], dtype=torch.float32, device=keys.device)

    def discount(self, divergence: float) -> float:
        """``rho = clip(2^(-D / D_half), rho_min, rho_max)``."""
        return min(max(2.0 ** (-divergence / self.d_half), self.rho_min), self.rho_max)

    def update(self, keys: torch.Tensor, rewards: torch.Tensor, divergence: torch.Tensor) -> None:
        """Fold each sample's reward into its prompt's posterior; `divergence` `(B,)` is each prompt's D(x)."""
        for k, r, d in zip(keys.cpu().tolist(), rewards.cpu().tolist(), divergence.cpu().tolist(), strict=True):
            a, b = self.state.get(k, self.prior)
            rho = self.discount(d)
            self.state[k] = (rho * a + r, rho * b + (1 - r))


class QuantileTracker:
    """RiskPO's running quantiles of the paper scores (arXiv 2510.00911): ``q <- m q + (1 - m) q_batch`` per level.

    The momentum ``m = 0.9`` is our reading (docs/papers_llm.md); the first update takes the batch value.
    """

    def __init__(self, *, alpha: float = 0.2, beta: float = 0.8, momentum: float = 0.9) -> None:
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"`momentum` must be in [0, 1), got {momentum}.")
        self.alpha, self.beta, self.momentum = alpha, beta, momentum
        self.q_low: float | None = None
        self.q_high: float | None = None

    def update(self, paper_scores: torch.Tensor) -> tuple[float, float]:
        """Mix this batch's quantiles in; returns ``(q_low, q_high)`` for `mvar_advantages`."""
        s = paper_scores.detach().float()
        lo, hi = float(torch.quantile(s, self.alpha)), float(torch.quantile(s, self.beta))
        m = self.momentum
        self.q_low = lo if self.q_low is None else m * self.q_low + (1 - m) * lo
        self.q_high = hi if self.q_high is None else m * self.q_high + (1 - m) * hi
        return self.q_low, self.q_high


class DynamicRewardWeights:
    """Gradient-based dynamic reward weighting (arXiv 2509.11452): accumulate `gradient_influence` for ``every``
    steps, then take a `mirror_descent_weights` step and restart the sum. Starts from uniform weights."""

    def __init__(self, num_objectives: int, *, lr: float = 1.0, every: int = 1) -> None:
        if num_objectives < 1 or every < 1:
            raise ValueError(f"Need num_objectives >= 1 and every >= 1, got {num_objectives}, {every}.")
        self.weights = torch.full((num_objectives,), 1.0 / num_objectives)
        self.lr, self.every = lr, every
        self._sum = torch.zeros(num_objectives)
        self._count = 0

    def update(self, grads: torch.Tensor) -> torch.Tensor:
        """Fold one step's per-objective gradients `(K, P)` in; returns the current weights `(K,)`."""
        self._sum += gradient_influence(grads).cpu()
        self._count += 1
        if self._count == self.every:
            self.weights = mirror_descent_weights(self.weights, self._sum, lr=self.lr)
            self._sum.zero_()
            self._count = 0
        return self.weights
