"""The statistics the leaderboard reports (DESIGN.md, "Statistics").

Per cell (dataset, protocol, metric): `summarize` over seeds. Against the baseline, paired by
seed: `paired_comparison` (exact Wilcoxon signed-rank, paired t-test, mean difference with its
CI), `holm` across methods and the `verdict` (byol_bench.report.cells.compare_by_seed puts them
together per cell). Across cells: `average_ranks`, `friedman_iman_davenport`, `nemenyi_cd` and
`nonsignificant_groups` (drawn by byol_bench.report.figures.cd_diagram), after Demsar 2006,
"Statistical Comparisons of Classifiers over Multiple Data Sets", J. Mach. Learn. Res. 7:1-30.

Pure functions of numbers (scipy for the distributions); nothing here reads runs or files.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import numpy as np
from scipy import special
from scipy import stats as scipy_stats

from byol_bench.report import signed_rank

VERDICTS = ("better", "worse", "n.s.", "n too small")


def _as_vector(values: Sequence[float]) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).ravel()


@lru_cache(maxsize=None)
def t_quantiles(df: int, confidence: float) -> tuple[float, float]:
    """The Student-t quantiles at (1 - confidence) / 2 and 1 - that, with df degrees of freedom:
    one scipy call per (df, confidence), not one per interval."""
    tail = (1.0 - confidence) / 2.0
    low, high = special.stdtrit(float(df), np.array([tail, 1.0 - tail]))
    return float(low), float(high)


def _mean_and_standard_error(values: np.ndarray) -> tuple[np.float64, np.float64]:
    """The mean and s / sqrt(n) (s at ddof=1) in the operations scipy's ttest_1samp uses, in its
    order, so its statistics come out bit for bit (tests/test_stats_scipy.py pins that)."""
    n = values.size
    with np.errstate(all="ignore"):  # an infinite value gives NaN bounds, silently (as scipy's did)
        mean = values.mean()
        variance = np.mean((values - mean) ** 2) * (n / (n - 1))
        return mean, np.sqrt(variance / n)


def t_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Student-t CI of the mean, mean -/+ t_{(1+confidence)/2, n-1} * s / sqrt(n) with s at ddof=1:
    scipy's `ttest_1samp(values, 0).confidence_interval(confidence)`, bit for bit, without its
    per-call overhead. (NaN, NaN) when n < 2, where no spread can be estimated (scipy would warn
    and return NaN too); (mean, mean) when every value is the same; NaN bounds when a value is
    NaN."""
    n = values.size
    if n < 2:
        return float("nan"), float("nan")
    mean, standard_error = _mean_and_standard_error(values)
    low, high = t_quantiles(n - 1, float(confidence))
    return float(low * standard_error + mean), float(high * standard_error + mean)


def paired_t_p(method: np.ndarray, baseline: np.ndarray) -> float:
    """Two-sided p of the paired t-test: scipy's `ttest_rel(method, baseline).pvalue`, bit for
    bit (t = mean(d) / (s / sqrt(n)), p = 2 * T_{n-1}(-|t|)); needs n >= 2."""
    differences = method - baseline
    mean, standard_error = _mean_and_standard_error(differences)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.divide(mean, standard_error)
    return float(2 * special.stdtr(float(differences.size - 1), -np.abs(t)))


def summarize(values: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """mean, std (ddof=1; 0 for a single value), n, and the t-based CI bounds ci_low, ci_high
    (NaN when n < 2). NaN values are kept, so a NaN seed shows as a NaN cell instead of
    silently shrinking n."""
    x = _as_vector(values)
    n = x.size
    mean = float(x.mean()) if n else float("nan")
    std = float(x.std(ddof=1)) if n >= 2 else (0.0 if n == 1 else float("nan"))
    ci_low, ci_high = t_interval(x, confidence)
    return {"mean": mean, "std": std, "n": n, "ci_low": ci_low, "ci_high": ci_high}


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values (Holm 1979, Scand. J. Statist. 6:65-70).

    With the m non-NaN p-values sorted, p_(1) <= ... <= p_(m):
        p~_(i) = min(1, max_{j <= i} (m - j + 1) p_(j)).
    Rejecting H_i when p~_i <= alpha is Holm's procedure at family-wise level alpha. The running
    max keeps the adjusted values in the order of the raw ones; NaN entries stay NaN, in place,
    and do not count in m. Same values as statsmodels' `multipletests(method="holm")`, written
    here because it is five lines and statsmodels would be a dependency for them alone.
    """
    p = _as_vector(pvalues)
    adjusted = np.full_like(p, np.nan)
    defined = np.flatnonzero(~np.isnan(p))
    m = defined.size
    if m == 0:
        return adjusted
    order = defined[np.argsort(p[defined], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted


def min_attainable_wilcoxon_p(n_nonzero: int) -> float:
    """Smallest two-sided p of the exact Wilcoxon signed-rank test on n non-zero differences:
    2 / 2^n (all signs equal is 1 of the 2^n equally likely sign patterns, doubled for two sides),
    capped at 1. 0.0625 at n = 5, 0.03125 at n = 6: fewer than 6 seeds never reach 0.05."""
    return min(1.0, 2.0 / 2.0 ** n_nonzero)


def wilcoxon_p(differences: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p of the paired differences (Demsar 2006, section 3.1.3).

    No zeros and no ties in |d|: the exact null distribution (`method="exact"`). Otherwise
    scipy's default: zero differences are dropped (zero_method="wilcox"), and scipy >= 1.15
    (method="auto") then enumerates all sign flips of the remaining differences, the exact
    conditional test, when there are at most 13 of them, and uses the tie-corrected normal
    approximation beyond that. All differences zero: p = 1 (no evidence of any difference).
    byol_bench.report.signed_rank computes those same p values directly (scipy beyond 50).
    """
    direct = signed_rank.direct_p(differences)  # the same p, without scipy's overhead
    if direct is not None:
        return direct
    nonzero = differences[differences != 0.0]
    if nonzero.size == 0:
        return 1.0
    has_ties = np.unique(np.abs(nonzero)).size < nonzero.size
    if nonzero.size == differences.size and not has_ties:
        return float(scipy_stats.wilcoxon(differences, method="exact").pvalue)
    return float(scipy_stats.wilcoxon(differences).pvalue)


def paired_comparison(method_values: Sequence[float], baseline_values: Sequence[float],
                      confidence: float = 0.95) -> dict[str, float]:
    """Method versus baseline, paired by position (the caller aligns the lists by seed).

    Returns n (pairs), diff (mean of method - baseline), diff_ci_low/diff_ci_high (t-based CI
    of that mean, NaN for n < 2), p_wilcoxon (two-sided signed-rank, see `wilcoxon_p`), p_ttest
    (two-sided paired t) and min_attainable_p = 2 / 2^n' with n' the non-zero differences (the
    floor of the exact Wilcoxon p; Demsar 2006 section 3.1.3 for the test). p values are NaN
    when n < 2 and 1 when every difference is zero.
    """
    method = _as_vector(method_values)
    baseline = _as_vector(baseline_values)
    if method.size != baseline.size:
        raise ValueError(f"paired values differ in length: {method.size} vs {baseline.size}")
    if np.isnan(method).any() or np.isnan(baseline).any():
        raise ValueError("paired values contain NaN; drop the seed from both sides first")
    # Metrics are counts over one test set, so equal differences are common (two seeds that
    # both gain 2 test images); rounding off float noise keeps those ties and zeros exact.
    differences = np.round(method - baseline, 12)
    n = differences.size
    ci_low, ci_high = t_interval(differences, confidence)
    if n < 2:
        p_wilcoxon = p_ttest = float("nan")
    elif not np.any(differences):
        p_wilcoxon = p_ttest = 1.0  # scipy's t-test would return NaN from 0/0
    else:
        p_wilcoxon = wilcoxon_p(differences)
        p_ttest = paired_t_p(method, baseline)
    return {
        "n": n,
        "diff": float(differences.mean()) if n else float("nan"),
        "diff_ci_low": ci_low,
        "diff_ci_high": ci_high,
        "p_wilcoxon": p_wilcoxon,
        "p_ttest": p_ttest,
        "min_attainable_p": min_attainable_wilcoxon_p(int(np.count_nonzero(differences))),
    }


def verdict(p_holm: float, diff: float, min_attainable_p: float, alpha: float,
            higher_is_better: bool = True, family_size: int = 1) -> str:
    """"n too small" when even the most extreme sign pattern could not reach alpha after Holm's
    correction over `family_size` comparisons (every Holm-adjusted p is at least
    family_size * min_attainable_p); otherwise "better"/"worse" (by the sign of the mean
    difference) when p_holm <= alpha, else "n.s."."""
    if family_size * min_attainable_p > alpha or math.isnan(p_holm):
        return "n too small"
    if p_holm > alpha:
        return "n.s."
    return "better" if (diff > 0) == higher_is_better else "worse"


def _score_matrix(score_matrix) -> np.ndarray:
    scores = np.asarray(score_matrix, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] < 1 or scores.shape[1] < 2:
        raise ValueError(f"score matrix must be (cells, methods) with >= 2 methods; got {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError("score matrix has NaN: rank only cells where every method has a score")
    return scores


def average_ranks(score_matrix, higher_is_better: bool = True) -> np.ndarray:
    """Mean rank of each method (column) over the cells (rows); rank 1 = best in a cell, tied
    methods share the average of the ranks they span (Demsar 2006, section 3.2.2)."""
    scores = _score_matrix(score_matrix)
    ranks = scipy_stats.rankdata(-scores if higher_is_better else scores, method="average", axis=1)
    return ranks.mean(axis=0)


def friedman_from_average_ranks(avg_ranks: Sequence[float], n_cells: int) -> dict[str, float]:
    """Friedman and Iman-Davenport statistics from the average ranks R_j of k methods on N cells
    (Demsar 2006, section 3.2.2, without a correction for ties):

        chi2_F = 12 N / (k (k + 1)) * [sum_j R_j^2 - k (k + 1)^2 / 4],   chi2 with k - 1 df,
        F_F    = (N - 1) chi2_F / (N (k - 1) - chi2_F),  F with (k - 1, (k - 1)(N - 1)) df.

    F_F is +inf (p 0) when every cell ranks the methods identically; F and both p are NaN for
    N < 2, where there is no between-cell variation to test against.
    """
    ranks = _as_vector(avg_ranks)
    k, n = ranks.size, int(n_cells)
    if k < 2:
        raise ValueError("the Friedman test needs at least 2 methods")
    chi2 = 12.0 * n / (k * (k + 1)) * (np.sum(ranks ** 2) - k * (k + 1) ** 2 / 4.0)
    chi2 = max(float(chi2), 0.0)  # rounding can leave -1e-15 when all ranks are equal
    result = {"chi2": chi2, "p_friedman": float("nan"), "F": float("nan"),
              "p_iman_davenport": float("nan"), "n_cells": n, "n_methods": k}
    if n < 2:
        return result
    result["p_friedman"] = float(scipy_stats.chi2.sf(chi2, k - 1))
    denominator = n * (k - 1) - chi2
    if denominator <= 1e-12 * n * (k - 1):
        result["F"], result["p_iman_davenport"] = float("inf"), 0.0
    else:
        result["F"] = float((n - 1) * chi2 / denominator)
        result["p_iman_davenport"] = float(scipy_stats.f.sf(result["F"], k - 1, (k - 1) * (n - 1)))
    return result


def friedman_iman_davenport(score_matrix) -> dict[str, float]:
    """chi2, p_friedman, F, p_iman_davenport, n_cells, n_methods for a (cells, methods) score
    matrix; see `friedman_from_average_ranks`. The statistics do not depend on the direction
    of "better" (reversing every rank leaves sum_j R_j^2 unchanged)."""
    scores = _score_matrix(score_matrix)
    return friedman_from_average_ranks(average_ranks(scores), scores.shape[0])


def nemenyi_q(k: int, alpha: float = 0.05) -> float:
    """Critical value q_alpha of the Nemenyi test for k methods: the studentized range quantile
    with infinite df divided by sqrt(2) (Demsar 2006, Table 5a: 2.569 for k = 4, alpha 0.05)."""
    if k < 2:
        raise ValueError("the Nemenyi test needs at least 2 methods")
    return float(scipy_stats.studentized_range.ppf(1.0 - alpha, k, np.inf) / math.sqrt(2.0))


def nemenyi_cd(k: int, n_cells: int, alpha: float = 0.05) -> float:
    """Nemenyi critical difference CD = q_alpha sqrt(k (k + 1) / (6 N)) (Demsar 2006, section
    3.2.2): two methods whose average ranks over N cells differ by at least CD differ
    significantly. k = 4, N = 14, alpha 0.05 gives 1.25."""
    if n_cells < 1:
        raise ValueError("the critical difference needs at least one cell")
    return nemenyi_q(k, alpha) * math.sqrt(k * (k + 1) / (6.0 * n_cells))


def nonsignificant_groups(sorted_ranks: Sequence[float], cd: float) -> list[tuple[int, int]]:
    """Maximal runs [i, j] (indices into ranks sorted ascending, j > i) whose spread
    rank_j - rank_i is below cd: the groups a CD diagram joins with a bar. A run inside a
    longer run is dropped."""
    ranks = _as_vector(sorted_ranks)
    if np.any(np.diff(ranks) < 0):
        raise ValueError("ranks must be sorted ascending")
    groups: list[tuple[int, int]] = []
    for i in range(ranks.size):
        j = int(np.searchsorted(ranks, ranks[i] + cd, side="left")) - 1
        # The end j never decreases with i, so a run is maximal iff it reaches past the last one.
        if j > i and (not groups or j > groups[-1][1]):
            groups.append((i, j))
    return groups
