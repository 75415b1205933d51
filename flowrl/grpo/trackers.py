"""Per-prompt state that outlives a step (outside the pure functions; torch only).

A trainer calls ``update(...)`` once per step with the step's samples and passes the returned tensors into the
pure advantage functions of `flowrl.grpo.advantages_llm`. Keys are integer prompt ids that must be stable across
steps (a dataset row index, not a position in the step's batch).
"""

from __future__ import annotations

import torch

from flowrl.grpo.advantages_llm import smooth_advantages


class CumulativeRewardStats:
    """DCPO's per-prompt cumulative reward statistics (arXiv 2509.02333, section 3.2), merged each step with the
    pooled-variance rule (Chan et al.): ``n = n_a + n_b``, ``mean = mean_a + (mean_b - mean_a) n_b / n`` and
    ``M2 = M2_a + M2_b + (mean_b - mean_a)^2 n_a n_b / n``; the std is ``sqrt(M2 / (n - 1))``.

    Calling the tracker is an advantage function ``(rewards, group_ids) -> A`` (`smooth_advantages`), so it can be
    a `Variant`'s `advantages`.
    """

    def __init__(self) -> None:
        self.state: dict[int, tuple[float, float, float, int]] = {}  # key -> (n, mean, M2, times seen)

    def update(self, rewards: torch.Tensor, group_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Merge this step's rewards per key; returns per-sample `(cum_mean, cum_std, times_seen)`, each `(B,)`."""
        r = rewards.detach().float().cpu()
        keys = group_ids.cpu().tolist()
        for key in dict.fromkeys(keys):
            vals = r[torch.tensor([k == key for k in keys])]
            n_b, mean_b = vals.numel(), float(vals.mean())
            m2_b = float(((vals - mean_b) ** 2).sum())
            n_a, mean_a, m2_a, seen = self.state.get(key, (0, 0.0, 0.0, 0))
            n = n_a + n_b
            delta = mean_b - mean_a
            self.state[key] = (n, mean_a + delta * n_b / n, m2_a + m2_b + delta**2 * n_a * n_b / n, seen + 1)
        rows = [self.state[k] for k in keys]
        mean = torch.tensor([s[1] for s in rows])
        std = torch.tensor([(s[2] / (s[0] - 1)) ** 0.5 if s[0] > 1 else 0.0 for s in rows])
        seen = torch.tensor([s[3] for s in rows], dtype=torch.float32)
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
