"""byol_bench.report.stats: worked examples from Demsar 2006 and Holm 1979, brute-force re-implementations,
and properties (Holm monotone, p in [0, 1])."""
import itertools
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from byol_bench.report.cells import compare_by_seed
from byol_bench.report.figures import cd_diagram
from byol_bench.report.stats import (VERDICTS, average_ranks, friedman_from_average_ranks, friedman_iman_davenport, holm,
                                  min_attainable_wilcoxon_p, nemenyi_cd, nemenyi_q, nonsignificant_groups,
                                  paired_comparison, summarize)


def compare_to_baseline(table, baseline, higher_is_better=True):
    """compare_by_seed (the leaderboard's per-cell comparison) on values aligned by seed."""
    return compare_by_seed({m: dict(enumerate(v)) for m, v in table.items()}, baseline,
                           higher=higher_is_better)

# Demsar 2006, Table 6: AUC of C4.5 and three variants on 14 UCI data sets.
DEMSAR_METHODS = ["C4.5", "C4.5+m", "C4.5+cf", "C4.5+m+cf"]
DEMSAR_AUC = np.array([
    [0.763, 0.768, 0.771, 0.798],  # adult (sample)
    [0.599, 0.591, 0.590, 0.569],  # breast cancer
    [0.954, 0.971, 0.968, 0.967],  # breast cancer wisconsin
    [0.628, 0.661, 0.654, 0.657],  # cmc
    [0.882, 0.888, 0.886, 0.898],  # ionosphere
    [0.936, 0.931, 0.916, 0.931],  # iris
    [0.661, 0.668, 0.609, 0.685],  # liver disorders
    [0.583, 0.583, 0.563, 0.625],  # lung cancer
    [0.775, 0.838, 0.866, 0.875],  # lymphography
    [1.000, 1.000, 1.000, 1.000],  # mushroom
    [0.940, 0.962, 0.965, 0.962],  # primary tumor
    [0.619, 0.666, 0.614, 0.669],  # rheum
    [0.972, 0.981, 0.975, 0.975],  # voting
    [0.957, 0.978, 0.946, 0.970],  # wine
])
# The average ranks printed under Table 6.
DEMSAR_AVG_RANKS = [3.143, 2.000, 2.893, 1.964]


# ---------------------------------------------------------------- summarize

def test_summarize_hand_computed():
    result = summarize([1.0, 2.0, 3.0, 4.0])
    std = math.sqrt(5 / 3)
    half = 3.182446305284263 * std / 2  # t_{0.975, 3}
    assert result == pytest.approx({"mean": 2.5, "std": std, "n": 4,
                                    "ci_low": 2.5 - half, "ci_high": 2.5 + half})


def test_summarize_matches_scipy_t_interval():
    x = np.array([0.81, 0.79, 0.84, 0.80, 0.83, 0.82])
    low, high = scipy_stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=scipy_stats.sem(x))
    result = summarize(x)
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((low, high))


def test_summarize_small_samples():
    one = summarize([0.7])
    assert one["mean"] == 0.7 and one["std"] == 0.0 and one["n"] == 1
    assert math.isnan(one["ci_low"]) and math.isnan(one["ci_high"])
    empty = summarize([])
    assert empty["n"] == 0 and math.isnan(empty["mean"]) and math.isnan(empty["ci_high"])


# ---------------------------------------------------------------- Holm

def test_holm_worked_example():
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005, 3*0.01, 2*0.03, max(1*0.04, 0.06)
    # (statsmodels multipletests(method="holm") gives the same)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_keeps_order():
    # sorted 0.01, 0.5, 0.6 -> 0.03, min(1, 1.0), max(0.6, 1.0)
    assert holm([0.5, 0.6, 0.01]) == pytest.approx([1.0, 1.0, 0.03])


def test_holm_preserves_nan_and_leaves_it_out_of_m():
    adjusted = holm([0.02, np.nan, 0.01])
    assert math.isnan(adjusted[1])
    assert adjusted[[0, 2]] == pytest.approx([0.02, 0.02])
    assert np.all(np.isnan(holm([np.nan, np.nan])))
    assert holm([]).size == 0


def test_holm_ties_get_equal_adjusted_values():
    assert holm([0.01, 0.01, 0.2]) == pytest.approx([0.03, 0.03, 0.2])


def holm_rejections(p, alpha):
    """Holm's step-down procedure as stated: walk up the sorted p, reject while
    p_(i) <= alpha / (m - i + 1), stop at the first failure."""
    m = len(p)
    rejected = np.zeros(m, dtype=bool)
    for i, idx in enumerate(np.argsort(p, kind="stable")):
        if p[idx] > alpha / (m - i):
            break
        rejected[idx] = True
    return rejected


@pytest.mark.parametrize("seed", range(20))
def test_holm_adjusted_values_reproduce_the_step_down_procedure(seed):
    rng = np.random.default_rng(seed)
    p = rng.random(rng.integers(1, 9)) ** 3  # skewed toward small p
    adjusted = holm(p)
    assert np.all((adjusted >= p) & (adjusted <= 1.0))
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(adjusted[order]) >= 0)  # monotone in the raw p
    for alpha in (0.001, 0.01, 0.05, 0.1, 0.2, 0.5):
        assert np.array_equal(adjusted <= alpha, holm_rejections(p, alpha))


# ---------------------------------------------------------------- paired comparison

def exact_signed_rank_p(d):
    """Brute force: enumerate all 2^n sign patterns of the non-zero |d| (average ranks for ties)
    and count those whose positive-rank sum is at least as far from its mean as the observed one."""
    d = d[d != 0]
    ranks = scipy_stats.rankdata(np.abs(d))
    observed = ranks[d > 0].sum()
    centre = ranks.sum() / 2
    extreme = 0
    for signs in itertools.product([False, True], repeat=d.size):
        r_plus = ranks[np.array(signs)].sum()
        extreme += abs(r_plus - centre) >= abs(observed - centre) - 1e-9
    return extreme / 2 ** d.size


def test_min_attainable_p():
    assert min_attainable_wilcoxon_p(5) == 0.0625
    assert min_attainable_wilcoxon_p(6) == 0.03125
    assert min_attainable_wilcoxon_p(0) == 1.0 and min_attainable_wilcoxon_p(1) == 1.0


@pytest.mark.parametrize("n", [5, 6, 8])
def test_all_positive_differences_reach_the_minimum_p(n):
    baseline = np.linspace(0.5, 0.6, n)
    result = paired_comparison(baseline + np.arange(1, n + 1) * 0.01, baseline)
    assert result["p_wilcoxon"] == pytest.approx(2 / 2 ** n)
    assert result["min_attainable_p"] == pytest.approx(2 / 2 ** n)


@pytest.mark.parametrize("seed", range(6))
def test_wilcoxon_matches_brute_force_without_ties(seed):
    rng = np.random.default_rng(seed)
    baseline = rng.random(9)
    method = baseline + rng.normal(0.02, 0.05, size=9)
    result = paired_comparison(method, baseline)
    assert result["p_wilcoxon"] == pytest.approx(exact_signed_rank_p(np.round(method - baseline, 12)))


def test_wilcoxon_with_ties_and_zeros_is_the_exact_sign_flip_test():
    d = np.array([0.0, 0.02, 0.02, 0.03, -0.01, 0.05, 0.02, 0.04])
    result = paired_comparison(d, np.zeros_like(d))
    assert result["p_wilcoxon"] == pytest.approx(exact_signed_rank_p(d))
    assert result["min_attainable_p"] == pytest.approx(2 / 2 ** 7)  # 7 non-zero differences


def test_float_noise_does_not_break_ties():
    # 0.93 - 0.91 and 0.95 - 0.93 differ in the last bits; both are the same 2-image gain.
    method = np.array([0.93, 0.95, 0.90, 0.97, 0.92, 0.96])
    baseline = np.array([0.91, 0.93, 0.87, 0.91, 0.89, 0.92])
    assert np.unique(method - baseline).size == 5
    d = np.round(method - baseline, 12)
    assert np.unique(d).size == 4
    assert paired_comparison(method, baseline)["p_wilcoxon"] == pytest.approx(exact_signed_rank_p(d))


def test_paired_t_test_and_difference_ci_by_hand():
    method = np.array([0.80, 0.83, 0.79, 0.85, 0.82, 0.81])
    baseline = np.array([0.78, 0.80, 0.80, 0.81, 0.79, 0.80])
    d = method - baseline
    t = d.mean() / (d.std(ddof=1) / math.sqrt(d.size))
    result = paired_comparison(method, baseline)
    assert result["n"] == 6
    assert result["diff"] == pytest.approx(d.mean())
    assert result["p_ttest"] == pytest.approx(2 * scipy_stats.t.sf(abs(t), d.size - 1))
    ci = summarize(d)
    assert (result["diff_ci_low"], result["diff_ci_high"]) == pytest.approx((ci["ci_low"], ci["ci_high"]))


def test_identical_values_give_p_one_not_nan():
    values = [0.7, 0.8, 0.75, 0.9, 0.85, 0.6]
    result = paired_comparison(values, values)
    assert result["p_wilcoxon"] == 1.0 and result["p_ttest"] == 1.0
    assert result["diff"] == 0.0 and result["min_attainable_p"] == 1.0


def test_fewer_than_two_pairs_give_nan_p():
    result = paired_comparison([0.9], [0.8])
    assert result["n"] == 1 and result["diff"] == pytest.approx(0.1)
    for key in ("p_wilcoxon", "p_ttest", "diff_ci_low", "diff_ci_high"):
        assert math.isnan(result[key])


def test_paired_comparison_rejects_misaligned_or_nan_input():
    with pytest.raises(ValueError):
        paired_comparison([0.1, 0.2], [0.1])
    with pytest.raises(ValueError):
        paired_comparison([0.1, np.nan], [0.1, 0.2])


# ---------------------------------------------------------------- compare_to_baseline

def make_table(n, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.7, 0.8, size=n)
    return {
        "byol": base,
        "better": base + rng.uniform(0.02, 0.04, size=n),
        "worse": base - rng.uniform(0.02, 0.04, size=n),
        "same": base + rng.normal(0, 0.01, size=n),
    }


def test_compare_to_baseline_verdicts_with_enough_seeds():
    records = compare_to_baseline(make_table(10), "byol")
    assert list(records) == ["better", "same", "worse"]  # sorted by name
    assert {name: r["verdict"] for name, r in records.items()} == {
        "better": "better", "worse": "worse", "same": "n.s."}
    raw = [r["p_wilcoxon"] for r in records.values()]
    assert [r["p_holm"] for r in records.values()] == pytest.approx(list(holm(raw)))


def test_compare_to_baseline_says_n_too_small_below_six_seeds():
    records = compare_to_baseline(make_table(5), "byol")
    assert all(r["verdict"] == "n too small" for r in records.values())
    assert records["better"]["p_wilcoxon"] == pytest.approx(0.0625)


def test_compare_to_baseline_says_n_too_small_when_holm_makes_alpha_unreachable():
    # n = 6: each raw p is 0.03125, but Holm over 2 methods doubles the smallest to 0.0625:
    # no outcome of 6 seeds could be significant, so the verdict says so instead of "n.s.".
    table = make_table(6)
    del table["same"]
    records = compare_to_baseline(table, "byol")
    assert all(r["p_wilcoxon"] == pytest.approx(0.03125) for r in records.values())
    assert all(r["p_holm"] == pytest.approx(0.0625) for r in records.values())
    assert all(r["verdict"] == "n too small" for r in records.values())
    # With one comparison the same 6 seeds can reach alpha.
    del table["worse"]
    assert compare_to_baseline(table, "byol")["better"]["verdict"] == "better"


def test_compare_to_baseline_lower_is_better():
    records = compare_to_baseline(make_table(10), "byol", higher_is_better=False)
    assert records["better"]["verdict"] == "worse" and records["worse"]["verdict"] == "better"


def test_compare_to_baseline_records_are_valid():
    for n in (1, 2, 5, 6, 12):
        for record in compare_to_baseline(make_table(n, seed=n), "byol").values():
            assert record["verdict"] in VERDICTS
            for key in ("p_wilcoxon", "p_ttest", "p_holm", "min_attainable_p"):
                assert math.isnan(record[key]) or 0.0 <= record[key] <= 1.0


def test_compare_to_baseline_unknown_baseline():
    with pytest.raises(ValueError, match="byol"):
        compare_to_baseline({"simclr": [0.1, 0.2]}, "byol")


# ---------------------------------------------------------------- ranks, Friedman, Iman-Davenport

def test_average_ranks_hand_computed_with_ties():
    scores = np.array([[0.9, 0.8, 0.7],
                       [0.5, 0.5, 0.6],   # ranks 2.5, 2.5, 1
                       [0.1, 0.3, 0.2]])  # ranks 3, 1, 2
    assert average_ranks(scores) == pytest.approx([(1 + 2.5 + 3) / 3, (2 + 2.5 + 1) / 3, (3 + 1 + 2) / 3])
    assert average_ranks(scores, higher_is_better=False) == pytest.approx(
        [(3 + 1.5 + 1) / 3, (2 + 1.5 + 3) / 3, (1 + 3 + 2) / 3])


def test_average_ranks_of_demsar_table_6():
    # Ranking the printed AUCs gives rank sums 44, 28, 41, 27. Demsar's printed averages
    # (2.893, 1.964 for the last two) move half a rank between them in one row; Friedman and
    # Nemenyi are tested on his printed averages below.
    assert average_ranks(DEMSAR_AUC) == pytest.approx(np.array([44, 28, 41, 27]) / 14)
    assert average_ranks(DEMSAR_AUC)[:2] == pytest.approx(DEMSAR_AVG_RANKS[:2], abs=5e-4)


def test_average_ranks_rejects_nan_and_single_method():
    with pytest.raises(ValueError):
        average_ranks([[0.1, np.nan]])
    with pytest.raises(ValueError):
        average_ranks([[0.1], [0.2]])


def test_friedman_iman_davenport_demsar_worked_example():
    # Demsar 2006, section 3.2.2: chi2_F = 9.28, F_F = 3.69 with F(3, 39) critical value 2.85.
    result = friedman_from_average_ranks(DEMSAR_AVG_RANKS, 14)
    assert result["chi2"] == pytest.approx(9.28, abs=0.005)
    assert result["F"] == pytest.approx(3.69, abs=0.005)
    assert scipy_stats.f.ppf(0.95, 3, 39) == pytest.approx(2.85, abs=0.005)
    assert result["p_iman_davenport"] < 0.05
    assert result["p_friedman"] == pytest.approx(scipy_stats.chi2.sf(result["chi2"], 3))
    assert result["n_cells"] == 14 and result["n_methods"] == 4


def test_friedman_iman_davenport_on_demsar_table():
    # Same formulas on the ranks of the printed table (44, 28, 41, 27) / 14.
    result = friedman_iman_davenport(DEMSAR_AUC)
    sum_sq = np.sum((np.array([44, 28, 41, 27]) / 14) ** 2)
    chi2 = 12 * 14 / (4 * 5) * (sum_sq - 4 * 25 / 4)
    assert result["chi2"] == pytest.approx(chi2)
    assert result["F"] == pytest.approx(13 * chi2 / (14 * 3 - chi2))
    assert result["p_iman_davenport"] == pytest.approx(scipy_stats.f.sf(result["F"], 3, 39))


@pytest.mark.parametrize("seed", range(5))
def test_friedman_matches_scipy_without_ties(seed):
    # scipy's friedmanchisquare corrects for ties; with continuous scores there are none.
    scores = np.random.default_rng(seed).normal(size=(12, 5)) + np.linspace(0, 1, 5)
    expected = scipy_stats.friedmanchisquare(*scores.T)
    result = friedman_iman_davenport(scores)
    assert result["chi2"] == pytest.approx(expected.statistic)
    assert result["p_friedman"] == pytest.approx(expected.pvalue)
    assert 0.0 <= result["p_iman_davenport"] <= 1.0


def test_friedman_edge_cases():
    identical_orders = friedman_iman_davenport(np.tile([0.9, 0.8, 0.7], (5, 1)))
    assert identical_orders["chi2"] == pytest.approx(10.0)  # N (k - 1), the maximum
    assert identical_orders["F"] == math.inf and identical_orders["p_iman_davenport"] == 0.0
    all_tied = friedman_iman_davenport(np.ones((4, 3)))
    assert all_tied["chi2"] == 0.0 and all_tied["p_iman_davenport"] == pytest.approx(1.0)
    one_cell = friedman_iman_davenport([[0.9, 0.8, 0.7]])
    assert math.isnan(one_cell["p_friedman"]) and math.isnan(one_cell["F"])


# ---------------------------------------------------------------- Nemenyi critical difference

@pytest.mark.parametrize("k, q", [(2, 1.960), (3, 2.343), (4, 2.569), (5, 2.728), (6, 2.850),
                                  (7, 2.949), (8, 3.031), (9, 3.102), (10, 3.164)])
def test_nemenyi_q_matches_demsar_table_5a(k, q):
    assert nemenyi_q(k, 0.05) == pytest.approx(q, abs=1e-3)


@pytest.mark.parametrize("k, q", [(2, 1.645), (3, 2.052), (4, 2.291)])
def test_nemenyi_q_alpha_010(k, q):
    assert nemenyi_q(k, 0.10) == pytest.approx(q, abs=1e-3)


def test_nemenyi_cd_demsar_worked_example():
    # Demsar 2006, section 3.2.2: k = 4, N = 14: CD = 2.569 sqrt(4*5 / (6*14)) = 1.25 at 0.05,
    # 1.12 at 0.10.
    assert nemenyi_cd(4, 14) == pytest.approx(1.25, abs=0.005)
    assert nemenyi_cd(4, 14, alpha=0.10) == pytest.approx(1.12, abs=0.005)
    assert nemenyi_cd(4, 14) == pytest.approx(nemenyi_q(4) * math.sqrt(20 / 84))


def test_nemenyi_conclusions_of_demsar_worked_example():
    ranks = sorted(DEMSAR_AVG_RANKS)  # +m+cf 1.964, +m 2.000, +cf 2.893, C4.5 3.143
    # At 0.05 even best vs worst (1.179) is below the CD: one group.
    assert nonsignificant_groups(ranks, nemenyi_cd(4, 14)) == [(0, 3)]
    # At 0.10 C4.5 differs from +m and +m+cf: C4.5 is grouped only with +cf.
    assert nonsignificant_groups(ranks, nemenyi_cd(4, 14, alpha=0.10)) == [(0, 2), (2, 3)]


def test_nonsignificant_groups_drop_contained_runs_and_singletons():
    ranks = [1.0, 1.5, 1.8, 3.5, 5.0, 5.2]
    assert nonsignificant_groups(ranks, 1.0) == [(0, 2), (4, 5)]
    assert nonsignificant_groups(ranks, 0.1) == []
    assert nonsignificant_groups(ranks, 10.0) == [(0, 5)]
    with pytest.raises(ValueError):
        nonsignificant_groups([2.0, 1.0], 1.0)


def test_nemenyi_rejects_bad_sizes():
    with pytest.raises(ValueError):
        nemenyi_q(1)
    with pytest.raises(ValueError):
        nemenyi_cd(3, 0)


# ---------------------------------------------------------------- CD diagram

def test_cd_diagram_writes_png(tmp_path):
    ranks = dict(zip(DEMSAR_METHODS, DEMSAR_AVG_RANKS))
    path = cd_diagram(ranks, nemenyi_cd(4, 14, alpha=0.10), tmp_path / "figures" / "cd.png",
                      title="Demsar 2006, alpha = 0.10")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_cd_diagram_handles_odd_k_and_a_cd_longer_than_the_axis(tmp_path):
    path = cd_diagram({"a": 1.2, "b": 2.4, "c": 2.4}, 3.5, tmp_path / "cd.png")
    assert path.stat().st_size > 0
    with pytest.raises(ValueError):
        cd_diagram({"a": 1.0}, 1.0, tmp_path / "one.png")
