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


def ranked(nonzero: list[float]) -> tuple[tuple[int, ...], int, list[int]]:
    """The doubled average ranks of |d| in ascending order (integers: a group of c equal values
    from sorted position i shares 2i + c + 1), the observed 2 R+ and the tied groups' sizes.
    Plain Python: for a few dozen values it is faster than numpy's per-call overhead."""
    magnitudes = sorted(abs(v) for v in nonzero)
    doubled: dict[float, int] = {}
    groups = []
    i, n = 0, len(magnitudes)
    while i < n:
        j = i + 1
        while j < n and magnitudes[j] == magnitudes[i]:
            j += 1
        doubled[magnitudes[i]] = i + j + 1
        groups.append(j - i)
        i = j
    observed = sum(doubled[v] for v in nonzero if v > 0)
    return tuple(doubled[m] for m in magnitudes), observed, groups


@lru_cache(maxsize=4096)
def null_cumulative_counts(ranks: tuple[int, ...]) -> list[int]:
    """cum[k] = number of the 2^n sign patterns with 2 R+ <= k, for the sorted doubled ranks."""
    counts = np.zeros(sum(ranks) + 1, dtype=np.int64)
    counts[0] = 1
    for w in ranks:  # each w >= 2 and below counts.size
        shifted = np.zeros_like(counts)
        shifted[w:] = counts[:-w]
        counts += shifted
    return np.cumsum(counts).tolist()


def exact_p(ranks: tuple[int, ...], observed: int) -> float:
    """Two-sided p of the exact (conditional, with ties) sign-flip test: the doubled ranks of
    the n non-zero differences, sorted, and the observed 2 R+."""
    cum = null_cumulative_counts(ranks)
    at_most = cum[observed]
    at_least = cum[-1] - (cum[observed - 1] if observed > 0 else 0)
    return min(1.0, 2 * min(at_most, at_least) / 2 ** len(ranks))


def normal_p(observed: int, groups: list[int]) -> float:
    """scipy's `wilcoxon(d)` p by the normal approximation (zero_method="wilcox": zeros
    dropped; ties corrected; no continuity correction, scipy's default), its operations in
    its order: the observed 2 R+ and the tied groups' sizes of the non-zero differences."""
    count = float(sum(groups))
    r_plus = observed / 2.0
    mn = count * (count + 1.0) * 0.25
    se = count * (count + 1.0) * (2.0 * count + 1.0)
    tie_correct = float(sum(t ** 3 - t for t in groups))
    se = np.sqrt((se - tie_correct / 2) / 24)
    z = (r_plus - mn) / se
    return float(2 * special.ndtr(-np.abs(z)))


def direct_p(differences: np.ndarray) -> float | None:
    """The p scipy gives for these paired differences as byol_bench.report.stats.wilcoxon_p calls
    it (see the module docstring), or None where this module does not reproduce it (more than
    MAX_EXACT_N differences, or a NaN): call scipy then."""
    values = differences.tolist()
    if len(values) > MAX_EXACT_N or any(v != v for v in values):
        return None
    nonzero = [v for v in values if v != 0.0]
    if not nonzero:
        return 1.0
    ranks, observed, groups = ranked(nonzero)
    zeros_or_ties = len(nonzero) < len(values) or len(groups) < len(nonzero)
    if not zeros_or_ties or len(values) <= MAX_PERMUTATION_N:
        return exact_p(ranks, observed)
    return normal_p(observed, groups)
