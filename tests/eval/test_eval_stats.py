"""Bootstrap CIs, summaries and paired comparisons of `flowrl.eval.stats`. Run: pytest tests/eval/test_eval_stats.py"""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import flowrl.eval.stats as stats
from flowrl.eval.stats import bootstrap_ci, compare_paired, summarize


def test_doctests():
    assert doctest.testmod(stats).failed == 0


def test_bootstrap_ci_width_matches_the_normal_approximation():
    # mean of n = 400 draws: the 95% CI half-width is about 1.96 * s / sqrt(400) (s the sample std)
    values = np.random.default_rng(1).standard_normal(400)
    low, high = bootstrap_ci(values, n_resamples=4000, seed=0)
    assert low < values.mean() < high
    assert (high - low) / 2 == pytest.approx(1.96 * values.std(ddof=1) / 20, rel=0.05)


def test_bootstrap_is_seeded():
    v = np.arange(10.0)
    assert bootstrap_ci(v, seed=3) == bootstrap_ci(v, seed=3) != bootstrap_ci(v, seed=4)


def _numpy_percentile_ci(values, *, n_resamples, confidence, seed):
    """The hand-written percentile bootstrap that `bootstrap_ci` replaced (scipy.stats.bootstrap now)."""
    idx = np.random.default_rng(seed).integers(0, len(values), size=(n_resamples, len(values)))  # (R, N)
    means = values[idx].mean(axis=1)  # (R,)
    alpha = (1 - confidence) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


@pytest.mark.parametrize("n, resamples, confidence, seed", [(2, 10, 0.95, 0), (37, 1000, 0.95, 3), (400, 999, 0.8, 7)])
def test_scipy_percentile_ci_is_the_hand_written_one(n, resamples, confidence, seed):
    values = np.random.default_rng(n).standard_normal(n) ** 2  # skewed
    ours = bootstrap_ci(values, n_resamples=resamples, confidence=confidence, seed=seed)
    assert ours == _numpy_percentile_ci(values, n_resamples=resamples, confidence=confidence, seed=seed)


def test_bca_shifts_a_skewed_interval_and_one_value_is_its_own_interval():
    values = np.random.default_rng(0).exponential(size=60)  # right-skewed: BCa moves the interval up
    low, high = bootstrap_ci(values, n_resamples=4000, method="BCa")
    p_low, p_high = bootstrap_ci(values, n_resamples=4000)
    assert low < values.mean() < high and low > p_low and high > p_high
    assert bootstrap_ci(np.array([3.5])) == (3.5, 3.5)


def test_summarize_drops_non_finite_and_uses_sample_std():
    s = summarize(np.array([1.0, 2.0, 3.0, np.nan, np.inf]))
    assert s.n == 3 and s.mean == 2.0 and s.std == 1.0  # sqrt(((1-2)^2 + 0 + (3-2)^2) / 2)
    assert summarize(np.array([np.nan])).n == 0


def test_compare_paired_by_hand():
    c = compare_paired(np.array([2.0, 2.0, 0.0, 1.0]), np.array([1.0, 1.0, 1.0, 1.0]))
    # diffs 1, 1, -1, 0: wins 2/4, ties 1/4 -> win rate 0.5 + 0.125; mean diff 1/4
    assert c.prompts == 4 and c.win_rate == 0.625 and c.tie_rate == 0.25 and c.mean_diff == 0.25
    with pytest.raises(ValueError, match="equal-length"):
        compare_paired(np.zeros(2), np.zeros(3))
