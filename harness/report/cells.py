"""The leaderboard's numbers, from run records: no files, no formatting.

Run results become cells (dataset, protocol, metric) of values indexed by method and seed.
Per cell: `summarize` per method, and every method against the baseline *paired by seed*
(only seeds where both have a finite value), Holm-corrected across methods. Across the
primary-metric cells: average ranks, Friedman/Iman-Davenport and the Nemenyi CD. Every test
is one of byol_bench.report.stats; this module only aligns the numbers for them.
"""
from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np

from byol_bench.report import stats
from byol_bench.evaluation.metrics import higher_is_better

TRANSFER_PREFIX = "transfer"
COST_PROTOCOL = "cost"

SeedValues = dict[int, float]          # seed -> value of one method in one cell


@dataclass(frozen=True, order=True)
class CellKey:
    """One cell of the result contract: `<protocol>/<metric>` of runs on `dataset`."""
    dataset: str
    protocol: str
    metric: str

    @property
    def is_transfer(self) -> bool:
        """Protocols named transfer* evaluate on another dataset than the one pretrained on."""
        return self.protocol.startswith(TRANSFER_PREFIX)


def natural_key(text: str) -> tuple:
    """Sort key that orders embedded numbers by value: semi1 < semi10 < semi100."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part)
                 for part in re.split(r"(\d+)", text) if part)


def collect_cells(records: Iterable) -> dict[CellKey, dict[str, SeedValues]]:
    """{CellKey: {method: {seed: value}}} from completed run records, cost figures excluded."""
    cells: dict[CellKey, dict[str, SeedValues]] = defaultdict(dict)
    for record in records:
        dataset, method, seed = record.key
        for key, value in record.result.items():
            protocol, _, metric = key.partition("/")
            if protocol == COST_PROTOCOL or not metric:
                continue
            cells[CellKey(dataset, protocol, metric)].setdefault(method, {})[seed] = _as_float(value)
    return dict(cells)


def collect_costs(records: Iterable) -> dict[tuple[str, str], dict[str, SeedValues]]:
    """{(dataset, method): {figure: {seed: value}}} from the `cost/<figure>` result keys."""
    costs: dict[tuple[str, str], dict[str, SeedValues]] = defaultdict(lambda: defaultdict(dict))
    for record in records:
        dataset, method, seed = record.key
        for key, value in record.result.items():
            protocol, _, figure = key.partition("/")
            if protocol == COST_PROTOCOL:
                costs[(dataset, method)][figure][seed] = _as_float(value)
    return {k: dict(v) for k, v in costs.items()}


def _as_float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def summarize_by_seed(values: SeedValues) -> dict:
    """`stats.summarize` over the seeds in ascending order, plus those seeds and values."""
    seeds = sorted(values)
    ordered = [values[s] for s in seeds]
    return {**stats.summarize(ordered), "seeds": seeds, "values": ordered}


def compare_by_seed(by_method: Mapping[str, SeedValues], baseline: str, alpha: float = 0.05,
                    higher: bool = True) -> dict[str, dict]:
    """Each non-baseline method against `baseline`, paired on the seeds both have finite values
    for; Holm across the methods. The same numbers as the brute-force reference in the tests when every
    method has every seed; a method missing seeds is tested on the common ones only.

    Returns method -> `stats.paired_comparison` record + p_holm, verdict and paired_seeds.
    """
    if baseline not in by_method:
        raise ValueError(f"baseline {baseline!r} not among the methods: {', '.join(by_method)}")
    base = by_method[baseline]
    records: dict[str, dict] = {}
    for method in sorted(by_method):
        if method == baseline:
            continue
        values = by_method[method]
        seeds = sorted(s for s in set(values) & set(base)
                       if math.isfinite(values[s]) and math.isfinite(base[s]))
        record = stats.paired_comparison([values[s] for s in seeds], [base[s] for s in seeds])
        record["paired_seeds"] = seeds
        records[method] = record
    adjusted = stats.holm([r["p_wilcoxon"] for r in records.values()])
    for record, p_holm in zip(records.values(), adjusted):
        record["p_holm"] = float(p_holm)
        record["verdict"] = stats.verdict(record["p_holm"], record["diff"], record["min_attainable_p"],
                                          alpha, higher, family_size=len(records))
    return records


@dataclass
class CellStats:
    """Everything the tables show for one cell."""
    key: CellKey
    summaries: dict[str, dict]                 # method -> summarize_by_seed
    comparisons: dict[str, dict]               # method -> compare_by_seed record ({} without baseline)
    baseline: str | None                       # the baseline when it has values here
    higher_is_better: bool = True
    percent: bool = False                      # every value in [0, 1]: shown as a percentage

    def best_methods(self) -> set[str]:
        """The methods whose mean is the best finite mean of the cell (ties all count)."""
        means = {m: s["mean"] for m, s in self.summaries.items() if math.isfinite(s["mean"])}
        if not means:
            return set()
        best = max(means.values()) if self.higher_is_better else min(means.values())
        return {m for m, v in means.items() if np.isclose(v, best, rtol=0.0, atol=1e-12)}


def cell_stats(key: CellKey, by_method: Mapping[str, SeedValues], baseline: str,
               alpha: float = 0.05) -> CellStats:
    higher = higher_is_better(key.metric)
    summaries = {m: summarize_by_seed(v) for m, v in sorted(by_method.items())}
    has_baseline = baseline in by_method and len(by_method) > 1
    comparisons = compare_by_seed(by_method, baseline, alpha, higher) if has_baseline else {}
    finite = [v for values in by_method.values() for v in values.values() if math.isfinite(v)]
    percent = bool(finite) and all(0.0 <= v <= 1.0 for v in finite)
    return CellStats(key, summaries, comparisons, baseline if has_baseline else None,
                     higher, percent)


def transfer_target(protocol: str, source: str, dataset_names: Iterable[str]) -> str | None:
    """The dataset a transfer protocol evaluates on, read from its name: the first run of
    '-'-separated words that is a known dataset other than the source (longest at a position),
    e.g. 'transfer-dermamnist-linear' or 'transfer-isic-dermamnist-linear' -> 'dermamnist'."""
    names = set(dataset_names)
    words = protocol.split("-")
    for start in range(1, len(words)):
        for end in range(len(words), start, -1):
            candidate = "-".join(words[start:end])
            if candidate in names and candidate != source:
                return candidate
    return None


def choose_primary_metric(dataset: str, protocol: str, metrics: Iterable[str],
                          primary_of: Mapping[str, str],
                          transfer_primary: Mapping[tuple[str, str], str] | None = None) -> str:
    """The metric a (dataset, protocol) column shows: the dataset's primary metric; for a
    transfer protocol the target dataset's (as the run recorded it in `transfer_primary`; for
    older runs parsed from the protocol's name), then the source's. Otherwise accuracy if
    reported, else the first metric by name."""
    available = sorted(metrics)
    preferred = []
    if transfer_primary and (dataset, protocol) in transfer_primary:
        preferred.append(transfer_primary[(dataset, protocol)])
    elif protocol.startswith(TRANSFER_PREFIX):
        target = transfer_target(protocol, dataset, primary_of)
        if target is not None:
            preferred.append(primary_of[target])
    if dataset in primary_of:
        preferred.append(primary_of[dataset])
    preferred.append("accuracy")
    for metric in preferred:
        if metric in available:
            return metric
    return available[0]


def primary_cells(cells: Mapping[CellKey, object], primary_of: Mapping[str, str],
                  transfer_primary: Mapping[tuple[str, str], str] | None = None) -> list[CellKey]:
    """One cell per (dataset, protocol), on its primary metric, in display order."""
    metrics: dict[tuple[str, str], list[str]] = defaultdict(list)
    for key in cells:
        metrics[(key.dataset, key.protocol)].append(key.metric)
    chosen = [CellKey(d, p, choose_primary_metric(d, p, ms, primary_of, transfer_primary))
              for (d, p), ms in metrics.items()]
    return sorted(chosen, key=lambda k: (k.is_transfer, k.dataset, natural_key(k.protocol)))


@dataclass
class Ranking:
    """Average ranks of the methods over the cells where every one of them has a score."""
    avg_ranks: dict[str, float]                # best first
    cells: list[CellKey]                       # the N cells ranked
    dropped: list[CellKey] = field(default_factory=list)   # cells some method lacks
    friedman: dict = field(default_factory=dict)
    cd: float = float("nan")
    alpha: float = 0.05

    @property
    def methods(self) -> list[str]:
        return list(self.avg_ranks)


def overall_ranking(cells: Mapping[CellKey, CellStats], alpha: float = 0.05) -> Ranking | None:
    """Rank all methods in every cell with a finite mean for each of them (rank 1 best, by the
    metric's direction), then Friedman/Iman-Davenport and the Nemenyi CD over those N cells.
    None when fewer than 2 methods or no complete cell."""
    methods = sorted({m for c in cells.values() for m in c.summaries})
    if len(methods) < 2:
        return None
    used, dropped, rows = [], [], []
    for key, cell in cells.items():
        means = [cell.summaries[m]["mean"] if m in cell.summaries else float("nan") for m in methods]
        if all(math.isfinite(v) for v in means):
            used.append(key)
            rows.append([v if cell.higher_is_better else -v for v in means])
        else:
            dropped.append(key)
    if not used:
        return None
    ranks = stats.average_ranks(np.array(rows), higher_is_better=True)
    order = sorted(range(len(methods)), key=lambda i: (ranks[i], methods[i]))
    avg = {methods[i]: float(ranks[i]) for i in order}
    return Ranking(avg, used, dropped, stats.friedman_from_average_ranks(ranks, len(used)),
                   stats.nemenyi_cd(len(methods), len(used), alpha), alpha)
