"""Metric sums kept on the device until a step ends: no host sync per micro-batch.

A trainer adds detached tensors (`add_weighted` for a mean over tokens or edges, `add_weighted_sums` for the same
from sums it already has, `add_count` for a total, `add_moments` / `add_grouped_moments` for a ratio's mean and
standard deviation) and reads floats once with `means()`, one host sync for all of them. Python-number weights
stay Python numbers (no host-to-device copy). Sums are float64 so that the result equals Python-float
accumulation of the same terms. Several processes' sums add up with `merge` (`gather_objects` of `to_cpu()`).
"""

from __future__ import annotations

import math

import torch

Number = torch.Tensor | float


class MetricSums:
    """Weighted means, counts and ratio moments of one optimizer step (or a whole update)."""

    def __init__(self) -> None:
        self.weighted: dict[str, Number] = {}  # key -> sum of value * weight
        self.weights: dict[str, Number] = {}  # key -> sum of weights
        self.counts: dict[str, Number] = {}  # key -> plain total
        self.moments: dict[str, torch.Tensor] = {}  # key -> (n, sum of r - 1, sum of (r - 1)^2)
        self.grouped: dict[str, torch.Tensor] = {}  # prefix -> (3, G): the moments of each group

    @staticmethod
    def _add(into: dict[str, Number], key: str, value: Number) -> None:
        into[key] = into[key] + value if key in into else value

    @staticmethod
    def _double(value: torch.Tensor | float) -> Number:
        return value.detach().double() if isinstance(value, torch.Tensor) else float(value)

    def add_weighted(self, metrics: dict[str, torch.Tensor | float], weight: torch.Tensor | float) -> None:
        """Each `metrics[k]` counts `weight` times in the mean of k (e.g. a micro-batch's trained tokens)."""
        w = self._double(weight)
        for key, v in metrics.items():
            v = self._double(v)
            if isinstance(v, torch.Tensor) and isinstance(w, torch.Tensor):
                v = v.to(w.device)
            self._add(self.weighted, key, v * w)
            self._add(self.weights, key, w)

    def add_weighted_sums(self, sums: dict[str, torch.Tensor | float], weight: torch.Tensor | float) -> None:
        """Each `sums[k]` is already the sum of k over `weight` items (e.g. a loss summed over a micro-batch)."""
        w = self._double(weight)
        for key, v in sums.items():
            self._add(self.weighted, key, self._double(v))
            self._add(self.weights, key, w)

    def add_count(self, key: str, value: torch.Tensor | float) -> None:
        """Add to a total (reported as is, e.g. trained tokens or network evaluations)."""
        self._add(self.counts, key, self._double(value))

    def add_moments(self, key: str, ratio: torch.Tensor, mask: torch.Tensor) -> None:
        """Moments of `ratio` over the entries where `mask` is set: `key`'s mean and standard deviation."""
        dev = (ratio.detach().double() - 1.0) * mask
        self._add(
            self.moments, key, torch.stack([mask.double().sum(), dev.sum(), (dev * (ratio.detach() - 1.0)).sum()])
        )

    def add_grouped_moments(self, prefix: str, ratio: torch.Tensor, group: torch.Tensor, num_groups: int) -> None:
        """Moments of `ratio` `(n,)` per group `group` `(n,)` in ``[0, num_groups)``: reported as
        ``ratio_mean/<prefix>_<g>`` and ``ratio_std/<prefix>_<g>`` for each group that has entries."""
        dev = ratio.detach().double() - 1.0  # (n,)
        terms = torch.stack([torch.ones_like(dev), dev, dev * dev])  # (3, n)
        sums = torch.zeros(3, num_groups, dtype=torch.float64, device=dev.device)
        self._add(self.grouped, prefix, sums.index_add_(1, group.to(dev.device), terms))

    def merge(self, other: MetricSums) -> MetricSums:
        """Add `other`'s sums into these (another process's, after `to_cpu`); returns self."""
        for mine, theirs in (
            (self.weighted, other.weighted),
            (self.weights, other.weights),
            (self.counts, other.counts),
            (self.moments, other.moments),
            (self.grouped, other.grouped),
        ):
            for key, v in theirs.items():
                self._add(mine, key, v)
        return self

    def to_cpu(self) -> MetricSums:
        """A copy with every sum on the CPU (to send to other processes)."""
        out = MetricSums()
        for name in ("weighted", "weights", "counts", "moments", "grouped"):
            setattr(
                out, name, {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in getattr(self, name).items()}
            )
        return out

    def means(self, *, divide: dict[str, float] | None = None) -> dict[str, float]:
        """`{key: weighted mean}` (keys with zero weight are left out), counts as totals divided by `divide[key]`
        when given, and ``ratio_mean/<key>``, ``ratio_std/<key>`` for each moment key (and group). One host sync."""
        wkeys, ckeys, mkeys, gkeys = list(self.weighted), list(self.counts), list(self.moments), list(self.grouped)
        parts = [self.weighted[k] for k in wkeys] + [self.weights[k] for k in wkeys] + [self.counts[k] for k in ckeys]
        parts = [torch.as_tensor(p, dtype=torch.float64).reshape(-1).cpu() for p in parts]
        parts += [self.moments[k].reshape(-1).cpu() for k in mkeys]
        parts += [self.grouped[k].T.reshape(-1).cpu() for k in gkeys]  # (G, 3): each group's moments in turn
        if not parts:
            return {}
        flat = torch.cat(parts).tolist()  # the host sync
        out: dict[str, float] = {}
        n_w = len(wkeys)
        for i, key in enumerate(wkeys):
            if flat[n_w + i] > 0:
                out[key] = flat[i] / flat[n_w + i]
        pos = 2 * n_w
        for key in ckeys:
            out[key] = flat[pos] / (divide or {}).get(key, 1.0)
            pos += 1
        moment_keys = mkeys + [f"{p}_{g}" for p in gkeys for g in range(self.grouped[p].shape[1])]
        for key in moment_keys:
            n, s, sq = flat[pos : pos + 3]
            pos += 3
            if key not in self.moments and n == 0:
                continue  # a group without entries
            mean_dev = s / n if n > 0 else math.nan
            out[f"ratio_mean/{key}"] = 1.0 + mean_dev
            out[f"ratio_std/{key}"] = math.sqrt(max(sq / n - mean_dev**2, 0.0)) if n > 0 else math.nan
        return out
