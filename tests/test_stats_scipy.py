"""byol_bench.report.stats computes what scipy computed, without scipy's per-call overhead, and
the same numbers bit for bit: the t-interval, the paired t-test p and the Wilcoxon p (exact,
sign-flip with ties and zeros, normal approximation) equal the scipy calls the module made
before, on random inputs with ties, zeros, equal values and n from 1 to 50 (below).

byol_bench.report.stats.t_interval is scipy's `ttest_1samp(...).confidence_interval()`: the bounds
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

from byol_bench.report import signed_rank
from byol_bench.report.stats import paired_comparison, paired_t_p, summarize, t_interval, wilcoxon_p


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


def scipy_wilcoxon_p(differences):
    """byol_bench.report.stats.wilcoxon_p as it was: scipy's exact test without zeros or ties,
    scipy's default (sign flips up to 13 differences, else the normal approximation) with them."""
    nonzero = differences[differences != 0.0]
    if nonzero.size == 0:
        return 1.0
    if nonzero.size == differences.size and np.unique(np.abs(nonzero)).size == nonzero.size:
        return float(scipy_stats.wilcoxon(differences, method="exact").pvalue)
    return float(scipy_stats.wilcoxon(differences).pvalue)


def scipy_t_interval(values, confidence=0.95):
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ci = scipy_stats.ttest_1samp(values, 0.0).confidence_interval(confidence)
    return float(ci.low), float(ci.high)


def same(a: float, b: float) -> bool:
    """Bit for bit, NaN equal to NaN."""
    return a == b or (math.isnan(a) and math.isnan(b))


def samples(seed: int, sizes, count: int):
    """Differences as seeds' metrics give them: a few test images apart (ties), some equal
    (zeros), sometimes all the same, sometimes free floats."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        n = int(rng.choice(sizes))
        kind = i % 5
        if kind == 0:
            d = rng.normal(0.01, 0.03, n)  # no ties
        elif kind == 1:
            d = rng.integers(-4, 5, n) / 1000.0  # ties and zeros
        elif kind == 2:
            d = np.round(rng.normal(0.0, 0.02, n), 2)  # ties, the odd zero
        elif kind == 3:
            d = np.full(n, rng.integers(-3, 4) / 100.0)  # constant (or all zero)
        else:
            d = rng.integers(1, 4, n) * rng.choice([-1.0, 1.0], n) / 256.0  # exact ties, no zeros
        yield d


@pytest.mark.parametrize("seed", range(2))
def test_wilcoxon_p_is_scipy_bit_for_bit(seed):
    # Sign flips of scipy cost 2^n: ties and zeros up to n = 9 here, one n = 13 case below.
    checked = 0
    for d in samples(seed, list(range(1, 10)) + list(range(14, 31)) + [40, 50], 100):
        assert same(wilcoxon_p(d), scipy_wilcoxon_p(d)), d
        checked += 1
    assert checked == 100


def test_wilcoxon_p_at_the_edges_of_scipy_methods():
    cases = [np.array([0.0, 0.01, 0.01, -0.02, 0.03, 0.04, 0.05, -0.06, 0.07, 0.08, 0.09, 0.1, 0.11]),  # 13: flips
             np.array([0.0, 0.01, 0.01, -0.02, 0.03, 0.04, 0.05, -0.06, 0.07, 0.08, 0.09, 0.1, 0.11, 0.12]),  # 14
             np.arange(1.0, 31.0) * np.where(np.arange(30) % 4 == 0, -1.0, 1.0),  # exact, no ties, n = 30
             np.arange(1.0, 51.0),  # exact at MAX_EXACT_N: the smallest p, 2 / 2^50
             np.array([0.5, -0.5]), np.array([0.0, 0.0, 0.25])]
    for d in cases:
        assert same(wilcoxon_p(d), scipy_wilcoxon_p(d)), d
    assert signed_rank.direct_p(np.arange(1.0, 52.0)) is None  # beyond 50: scipy itself
    assert signed_rank.direct_p(np.array([1.0, np.nan])) is None


def test_t_interval_and_paired_t_p_are_scipy_bit_for_bit():
    rng = np.random.default_rng(100)
    for d in samples(0, range(2, 31), 400):
        for confidence in (0.95, 0.9):
            got, expected = t_interval(d, confidence), scipy_t_interval(d, confidence)
            assert same(got[0], expected[0]) and same(got[1], expected[1]), (d, confidence)
        baseline = np.round(rng.random(d.size), 3)
        method = baseline + d
        if np.any(np.round(method - baseline, 12)):  # paired_comparison's case for the t-test
            with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                expected_p = float(scipy_stats.ttest_rel(method, baseline).pvalue)
            assert same(paired_t_p(method, baseline), expected_p), (method, baseline)
