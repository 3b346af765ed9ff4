"""The two-sided Wilcoxon signed-rank p, computed directly: the same numbers as the scipy calls
byol_bench.report.stats.wilcoxon_p made, without scipy's per-call overhead (a leaderboard runs
thousands of these tests; scipy's sign-flip enumeration took 0.3 s per test with ties).

Under the null, each non-zero difference is positive or negative with probability 1/2, so the
rank sum of the positive ones, R+, is distributed as sum_i w_i s_i with w_i the (average) ranks
of |d_i| and s_i independent fair 0/1 coins. Counting the 2^n sign patterns by R+ is a small
dynamic programme over the doubled ranks (integers even with ties), cached per rank pattern.
p = min(1, 2 min(#{R+ <= r}, #{R+ >= r}) / 2^n), exact as a float: every count / 2^n is a
dyadic rational with n <= MAX_EXACT_N < 53 bits. That is what scipy returns for

- `wilcoxon(d, method="exact")` (no zeros, no ties): its null pmf sums are exact dyadic sums;
- `wilcoxon(d)` with zeros or ties on at most 13 differences: scipy >= 1.15 enumerates every
  sign flip (a `permutation_test`), zeros flipping to zero, which scales both counts and 2^n
  by the same power of two.

Beyond 13 differences with zeros or ties, scipy uses the tie-corrected normal approximation
without continuity correction; `normal_p` repeats its arithmetic step by step. Pinned equal to
scipy on random inputs in tests/test_stats_scipy.py.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import special

MAX_EXACT_N = 50        # counts fit int64 and every p is an exact float up to here
MAX_PERMUTATION_N = 13  # scipy's method="auto" enumerates sign flips up to 13 differences


def doubled_ranks(abs_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2 x the average ranks of `abs_values` (integers: ties share 2i + c + 1 for a group of c
    equal values starting at sorted position i) and the sizes of the tied groups."""
    order = np.argsort(abs_values, kind="stable")
    ordered = abs_values[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    counts = np.diff(np.append(starts, ordered.size))
    ranks = np.empty(ordered.size, dtype=np.int64)
    ranks[order] = np.repeat(2 * starts + counts + 1, counts)
    return ranks, counts


@lru_cache(maxsize=4096)
def null_cumulative_counts(ranks: tuple[int, ...]) -> np.ndarray:
    """cum[k] = number of the 2^n sign patterns with 2 R+ <= k, for the sorted doubled ranks."""
    counts = np.zeros(sum(ranks) + 1, dtype=np.int64)
    counts[0] = 1
    for w in ranks:  # each w >= 2 and below counts.size
        shifted = np.zeros_like(counts)
        shifted[w:] = counts[:-w]
        counts += shifted
    return np.cumsum(counts)


def exact_p(differences: np.ndarray) -> float:
    """Two-sided p of the exact (conditional, with ties) sign-flip test on the non-zero
    differences; 1.0 when there are none."""
    nonzero = differences[differences != 0.0]
    n = nonzero.size
    if n == 0:
        return 1.0
    ranks, _ = doubled_ranks(np.abs(nonzero))
    cum = null_cumulative_counts(tuple(sorted(ranks.tolist())))
    observed = int(ranks[nonzero > 0].sum())  # 2 R+
    at_most = int(cum[observed])
    at_least = int(cum[-1]) - (int(cum[observed - 1]) if observed > 0 else 0)
    return min(1.0, 2 * min(at_most, at_least) / 2 ** n)


def normal_p(differences: np.ndarray) -> float:
    """scipy's `wilcoxon(d)` p by the normal approximation (zero_method="wilcox": zeros
    dropped; ties corrected; no continuity correction, scipy's default), its operations in
    its order."""
    nonzero = differences[differences != 0.0]
    ranks, ties = doubled_ranks(np.abs(nonzero))
    count = float(nonzero.size)
    r_plus = float(ranks[nonzero > 0].sum()) / 2.0
    mn = count * (count + 1.0) * 0.25
    se = count * (count + 1.0) * (2.0 * count + 1.0)
    tie_correct = float(np.sum(ties.astype(np.float64) ** 3 - ties))
    se = np.sqrt((se - tie_correct / 2) / 24)
    z = (r_plus - mn) / se
    return float(2 * special.ndtr(-np.abs(z)))


def direct_p(differences: np.ndarray, no_zeros_no_ties: bool) -> float | None:
    """The p scipy would give for these differences (see the module docstring), or None where
    this module does not reproduce it (more than MAX_EXACT_N differences): call scipy then."""
    n = differences.size
    if n > MAX_EXACT_N:
        return None
    if no_zeros_no_ties or n <= MAX_PERMUTATION_N:
        return exact_p(differences)
    return normal_p(differences)
