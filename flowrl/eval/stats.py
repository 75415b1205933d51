"""Summary statistics of scores: mean, std and a seeded bootstrap confidence interval of the mean (scipy);
per-prompt win rates and the paired difference of two score sets."""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
import scipy.stats


class Summary(NamedTuple):
    """Scores of one reward: count, mean, sample std (ddof 1; 0 for one value) and the CI of the mean."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float


def bootstrap_ci(
    values: np.ndarray,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    method: Literal["percentile", "BCa", "basic"] = "percentile",
) -> tuple[float, float]:
    """Bootstrap CI of the mean (`scipy.stats.bootstrap`): resample `values` with replacement `n_resamples` times
    (``numpy.random.default_rng(seed)``); ``percentile`` takes the ``(1 - confidence) / 2`` and
    ``(1 + confidence) / 2`` quantiles of the resampled means, ``BCa`` corrects them for bias and skew (NaN, with
    scipy's DegenerateDataWarning, when every value is equal). One value gives ``(value, value)``.

    Example:
        >>> bootstrap_ci(np.array([2.0, 2.0, 2.0]))
        (2.0, 2.0)
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"bootstrap_ci needs a non-empty 1-D array, got shape {values.shape}.")
    if not 0 < confidence < 1 or n_resamples < 1:
        raise ValueError(f"need 0 < confidence < 1 and n_resamples >= 1, got {confidence} and {n_resamples}.")
    if len(values) == 1:  # scipy needs two observations; every resample of one value is that value
        return float(values[0]), float(values[0])
    result = scipy.stats.bootstrap(
        (values,),
        np.mean,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method=method,
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def summarize(values: np.ndarray, *, n_resamples: int = 1000, seed: int = 0) -> Summary:
    """`Summary` of finite `values` (NaN / inf are left out; all non-finite gives NaNs and n = 0)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return Summary(0, float("nan"), float("nan"), float("nan"), float("nan"))
    low, high = bootstrap_ci(values, n_resamples=n_resamples, seed=seed)
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return Summary(len(values), float(values.mean()), std, low, high)


class Comparison(NamedTuple):
    """A against B over P paired prompts: A's win rate (ties count half) and the mean paired difference A - B,
    each with its percentile-bootstrap CI over prompts."""

    prompts: int
    win_rate: float
    tie_rate: float
    mean_diff: float
    ci_low: float
    ci_high: float
    win_ci_low: float
    win_ci_high: float


def compare_paired(a: np.ndarray, b: np.ndarray, *, n_resamples: int = 1000, seed: int = 0) -> Comparison:
    """Compare per-prompt scores `a[p]` and `b[p]` (already averaged over each prompt's samples).

    Example:
        >>> c = compare_paired(np.array([1.0, 2.0, 3.0]), np.array([0.0, 2.0, 4.0]))
        >>> c.win_rate, c.tie_rate, c.mean_diff
        (0.5, 0.3333333333333333, 0.0)
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"compare_paired needs two equal-length non-empty 1-D arrays, got {a.shape} and {b.shape}.")
    diff = a - b  # (P,)
    wins, ties = float((diff > 0).mean()), float((diff == 0).mean())
    low, high = bootstrap_ci(diff, n_resamples=n_resamples, seed=seed)
    credit = (diff > 0) + 0.5 * (diff == 0)  # (P,) 1 win, 0.5 tie, 0 loss: its mean is the win rate
    win_low, win_high = bootstrap_ci(credit, n_resamples=n_resamples, seed=seed)
    return Comparison(len(a), wins + 0.5 * ties, ties, float(diff.mean()), low, high, win_low, win_high)
