"""Markdown tables of the leaderboard: numbers in, pipe tables out (tabulate).

tabulate re-parses number-like strings ("0.900" -> "0.9") unless `disable_numparse=True`, and
does not escape "|" inside cells: `pipe_table` does both for every table here.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Mapping, Sequence

from tabulate import tabulate

from byol_bench.report.cells import CellKey, CellStats, Ranking

MISSING = "–"
MARKERS = {"better": "▲", "worse": "▼", "n.s.": "n.s.", "n too small": "n too small"}
COST_COLUMNS = (("pretrain_img_per_s", "pretrain img/s", 1), ("peak_mem_mb", "peak mem (MB)", 0),
                ("pretrain_s", "pretrain (s)", 1), ("wall_s", "wall (s)", 1))


def escape(text) -> str:
    """A cell's text with '|' escaped, so it cannot split a pipe-table row."""
    return str(text).replace("|", "\\|")


def pipe_table(rows: Sequence[Sequence], headers: Sequence[str]) -> str:
    return tabulate([[escape(c) for c in row] for row in rows], headers=[escape(h) for h in headers],
                    tablefmt="pipe", disable_numparse=True)


def fmt_value(value: float, percent: bool, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return MISSING
    scaled = value * 100.0 if percent else value
    digits = 1 if percent else 3
    return f"{scaled:+.{digits}f}" if signed else f"{scaled:.{digits}f}"


def fmt_p(p: float, spaced: bool = False) -> str:
    """'p=0.031' / 'p<0.001' in a table cell; 'p = 0.031' / 'p < 0.001' in prose."""
    gap = " " if spaced else ""
    if p is None or not math.isfinite(p):
        return f"p{gap}={gap}{MISSING}"
    return f"p{gap}<{gap}0.001" if p < 0.001 else f"p{gap}={gap}{p:.3f}"


def fmt_interval(low: float, high: float, percent: bool, signed: bool = False) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return ""
    return f" [{fmt_value(low, percent, signed)}, {fmt_value(high, percent, signed)}]"


def summary_text(summary: dict, percent: bool, bold: bool, usual_n: int) -> str:
    """'85.9 ± 1.4 [84.1, 87.7]': mean ± std over seeds, then the 95% CI of the mean; the best
    mean bold; '(n=3)' when this method has another number of seeds than the table's usual."""
    core = f"{fmt_value(summary['mean'], percent)} ± {fmt_value(summary['std'], percent)}"
    text = (f"**{core}**" if bold else core) + fmt_interval(summary["ci_low"], summary["ci_high"], percent)
    return text + (f" (n={summary['n']})" if summary["n"] != usual_n else "")


def comparison_text(comparison: dict, percent: bool, method_n: int) -> str:
    """'+1.2 [-0.3, +2.7], p=0.031 ▲': mean paired difference to the baseline, its 95% CI, the
    Holm-adjusted Wilcoxon p and the verdict; 'n too small' replaces a p that cannot reach alpha."""
    n = comparison["n"]
    if n == 0:
        return "no common seeds"
    text = fmt_value(comparison["diff"], percent, signed=True)
    text += fmt_interval(comparison["diff_ci_low"], comparison["diff_ci_high"], percent, signed=True)
    paired = f"n={n}" + (" paired" if n != method_n else "")
    if comparison["verdict"] == "n too small":
        return f"{text}, n too small ({paired})"
    suffix = f" ({paired})" if n != method_n else ""
    return f"{text}, {fmt_p(comparison['p_holm'])} {MARKERS[comparison['verdict']]}{suffix}"


def method_label(method: str, roles: Mapping[str, str]) -> str:
    role = roles.get(method, "method")
    return method if role == "method" else f"{method} ({role})"


def usual_n(cells: Sequence[CellStats]) -> int:
    """The most common number of seeds in these cells (the larger one on a tie)."""
    counts = Counter(s["n"] for c in cells for s in c.summaries.values())
    return max(counts, key=lambda n: (counts[n], n)) if counts else 0


def column_title(key: CellKey, percent: bool, with_dataset: bool) -> str:
    where = f"{key.dataset} → {key.protocol}" if with_dataset else key.protocol
    return f"{where} ({key.metric}{', %' if percent else ''})"


def results_table(cells: Sequence[CellStats], methods: Sequence[str], roles: Mapping[str, str],
                  baseline: str, with_dataset: bool = False) -> str:
    """Rows: methods; per cell a column 'mean ± std [95% CI]' and, where the baseline has values,
    a column 'Δ vs baseline [95% CI], Holm p, marker'."""
    n_usual = usual_n(cells)
    headers = ["method"]
    for cell in cells:
        headers.append(column_title(cell.key, cell.percent, with_dataset))
        if cell.baseline is not None:
            headers.append(f"Δ vs {baseline}")
    best = [cell.best_methods() for cell in cells]
    rows = []
    for method in methods:
        if not any(method in c.summaries for c in cells):
            continue
        row = [method_label(method, roles)]
        for cell, best_here in zip(cells, best):
            summary = cell.summaries.get(method)
            row.append(summary_text(summary, cell.percent, method in best_here, n_usual) if summary else MISSING)
            if cell.baseline is None:
                continue
            if method == cell.baseline:
                row.append("baseline")
            elif method in cell.comparisons:
                row.append(comparison_text(cell.comparisons[method], cell.percent, summary["n"]))
            else:
                row.append(MISSING)
        rows.append(row)
    return pipe_table(rows, headers)


def ranking_table(ranking: Ranking, roles: Mapping[str, str]) -> str:
    """Methods by average rank, with whether each is separated from the best by the CD."""
    best_rank = min(ranking.avg_ranks.values())
    rows = []
    for position, (method, rank) in enumerate(ranking.avg_ranks.items(), start=1):
        if rank == best_rank:
            versus = "best"
        elif rank - best_rank >= ranking.cd:
            versus = "worse than the best by ≥ CD"
        else:
            versus = "within CD of the best"
        rows.append([str(position), method, roles.get(method, "method"), f"{rank:.2f}", versus])
    return pipe_table(rows, ["#", "method", "role", "average rank", "Nemenyi vs best"])


def cost_table(costs: Mapping[tuple[str, str], dict], methods: Sequence[str], roles: Mapping[str, str]) -> str:
    """Mean over seeds of each cost figure, per dataset and method."""
    rows = []
    for dataset in sorted({d for d, _ in costs}):
        for method in methods:
            figures = costs.get((dataset, method))
            if not figures:
                continue
            row = [dataset, method_label(method, roles)]
            for figure, _, digits in COST_COLUMNS:
                values = [v for v in figures.get(figure, {}).values() if math.isfinite(v)]
                row.append(f"{sum(values) / len(values):.{digits}f}" if values else MISSING)
            row.append(str(max((len(v) for v in figures.values()), default=0)))
            rows.append(row)
    return pipe_table(rows, ["dataset", "method", *(label for _, label, _ in COST_COLUMNS), "runs"])
