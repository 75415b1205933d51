"""Metric sums kept on the device until a step ends: no host sync per micro-batch.

A trainer adds detached tensors (`add_weighted` for a mean over tokens or edges, `add_count` for a total,
`add_moments` for a ratio's mean and standard deviation) and reads floats once per step with `means()`, one host
sync for all of them. Sums are float64 so that the result equals Python-float accumulation of the same terms.
"""

from __future__ import annotations

import math

import torch


class MetricSums:
    """Weighted means, counts and ratio moments of one optimizer step (or a whole update)."""

    def __init__(self) -> None:
        self.weighted: dict[str, torch.Tensor] = {}  # key -> sum of value * weight
        self.weights: dict[str, torch.Tensor] = {}  # key -> sum of weights
        self.counts: dict[str, torch.Tensor] = {}  # key -> plain total
        self.moments: dict[str, torch.Tensor] = {}  # key -> (n, sum of r - 1, sum of (r - 1)^2)

    @staticmethod
    def _add(into: dict[str, torch.Tensor], key: str, value: torch.Tensor) -> None:
        into[key] = into[key] + value if key in into else value

    def add_weighted(self, metrics: dict[str, torch.Tensor | float], weight: torch.Tensor | float) -> None:
        """Each `metrics[k]` counts `weight` times in the mean of k (e.g. a micro-batch's trained tokens)."""
        w = torch.as_tensor(weight).detach().double()
        for key, v in metrics.items():
            self._add(self.weighted, key, torch.as_tensor(v).detach().double().to(w.device) * w)
            self._add(self.weights, key, w)

    def add_count(self, key: str, value: torch.Tensor | float) -> None:
        """Add to a total (reported as is, e.g. trained tokens or a sum of gradient norms)."""
        self._add(self.counts, key, torch.as_tensor(value).detach().double())

    def add_moments(self, key: str, ratio: torch.Tensor, mask: torch.Tensor) -> None:
        """Moments of `ratio` over the entries where `mask` is set: `key`'s mean and standard deviation."""
        dev = (ratio.detach().double() - 1.0) * mask
        self._add(
            self.moments, key, torch.stack([mask.double().sum(), dev.sum(), (dev * (ratio.detach() - 1.0)).sum()])
        )

    def means(self, *, divide: dict[str, float] | None = None) -> dict[str, float]:
        """`{key: weighted mean}` (keys with zero weight are left out), counts as totals divided by `divide[key]`
        when given, and ``ratio_mean/<key>``, ``ratio_std/<key>`` for each moment key. One host sync."""
        keys = [("w", k) for k in self.weighted] + [("c", k) for k in self.counts] + [("m", k) for k in self.moments]
        if not keys:
            return {}
        parts = [self.weighted[k] for k in self.weighted] + [self.weights[k] for k in self.weighted]
        parts += [self.counts[k] for k in self.counts] + [m for m in self.moments.values()]
        flat = torch.cat([p.reshape(-1).cpu() for p in parts]).tolist()  # the host sync
        out: dict[str, float] = {}
        n_w = len(self.weighted)
        for i, (_, key) in enumerate(keys[:n_w]):
            if flat[n_w + i] > 0:
                out[key] = flat[i] / flat[n_w + i]
        pos = 2 * n_w
        for _, key in keys[n_w : n_w + len(self.counts)]:
            out[key] = flat[pos] / (divide or {}).get(key, 1.0)
            pos += 1
        for _, key in keys[n_w + len(self.counts) :]:
            n, s, sq = flat[pos : pos + 3]
            pos += 3
            mean_dev = s / n if n > 0 else math.nan
            out[f"ratio_mean/{key}"] = 1.0 + mean_dev
            out[f"ratio_std/{key}"] = math.sqrt(max(sq / n - mean_dev**2, 0.0)) if n > 0 else math.nan
        return out
