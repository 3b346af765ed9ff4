"""results/runs -> results/LEADERBOARD.md + results/leaderboard.json + results/figures/*.png.

A pure function of the run store (DESIGN.md, "Statistics"): rebuilding from the same runs gives
the same tables, figures and JSON; only the markdown's "Generated" line carries a date.

The markdown: provenance of the runs; the overall ranking (average ranks over the cells
dataset x protocol on each dataset's primary metric, Friedman/Iman-Davenport, Nemenyi CD and
its diagram); per dataset a table of methods x protocols (mean ± std [95% CI]; the difference
to the baseline, paired by seed, with its CI, Holm-adjusted Wilcoxon p and a marker) and its
training curves; the transfer table (protocols named transfer*); costs; runs in progress; failed
and interrupted runs; notes on power. leaderboard.json holds one record per (dataset, protocol,
metric, method), every metric.
"""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

from byol_bench.report import stats
from byol_bench.report.figures import cd_diagram, plot_curves, safe_name, training_curves
from byol_bench.report.code_notes import code_notes
from byol_bench.report.cells import (CellKey, CellStats, Ranking, cell_stats, collect_cells, collect_costs,
                                  natural_key, overall_ranking, primary_cells)
from byol_bench.report.tables import cost_table, fmt_p, ranking_table, results_table
from byol_bench.report.provenance import KEY_PACKAGES, KEY_SETTINGS, collect_provenance, describe
from byol_bench.store.atomic_io import atomic_write_text
from byol_bench.store.records import (RunRecord, STALE_AFTER_S, config_differences, latest_completed, load_runs,
                                   one_per_key)
from byol_bench.store.staleness import newest_data

ALPHA = 0.05
NOT_COMPLETED = ("FAILED", "INTERRUPTED")
CD_FIGURE = "cd-diagram.png"


def dataset_primary_metrics(records: list[RunRecord]) -> dict[str, str]:
    """Dataset (label, name, transfer target) -> its primary metric, as each run recorded it
    (`describe` in its config). The dataset cards are read only for runs stored before runs
    described themselves, and only for the datasets no described run names."""
    out: dict[str, str] = {}
    legacy = False
    for r in records:
        describe = r.config.get("describe")
        if not describe:
            legacy = True
            continue
        metric = describe["dataset"]["primary_metric"]
        out.setdefault(r.key[0], metric)
        out.setdefault(describe["dataset"]["name"], metric)
        for target in describe.get("transfer", {}).values():
            out.setdefault(target["target"], target["primary_metric"])
    if legacy:
        from byol_bench.data import DATASETS
        for name in DATASETS.names():
            card = DATASETS.get(name)
            for alias in (name, *card.aliases):
                out.setdefault(alias, card.primary_metric)
        for r in records:  # a recipe's label ("stl10 [garg-jain-code]") takes its dataset's metric
            if r.config.get("dataset") in out:
                out.setdefault(r.key[0], out[r.config["dataset"]])
    return out


def transfer_primary_metrics(records: list[RunRecord]) -> dict[tuple[str, str], str]:
    """(dataset label, transfer protocol) -> the target dataset's primary metric, from the runs'
    own records: the target is data there, not a name to parse out of the protocol."""
    return {(r.key[0], protocol): target["primary_metric"]
            for r in records for protocol, target in (r.config.get("describe") or {}).get("transfer", {}).items()}


def method_roles(records: list[RunRecord], baseline: str) -> dict[str, str]:
    """method -> 'baseline' | 'reference' (random-init, supervised) | 'method', as the runs
    recorded it; the registry only for runs stored before that (a method no longer registered
    then counts as a method)."""
    recorded = {r.key[1]: r.config["describe"]["method"]["role"] for r in records if r.config.get("describe")}
    roles = {}
    for m in sorted({r.key[1] for r in records}):
        if m == baseline:
            roles[m] = "baseline"
        elif m in recorded:
            roles[m] = recorded[m]
        else:
            from byol_bench.method import METHODS
            roles[m] = "reference" if m in METHODS and getattr(METHODS.get(m), "reference", False) else "method"
    return roles


def method_order(roles: dict[str, str]) -> list[str]:
    """Baseline first, then methods by name, then the references by name."""
    rank = {"baseline": 0, "method": 1, "reference": 2}
    return sorted(roles, key=lambda m: (rank[roles[m]], m))


def _clean(value):
    """NaN and infinities -> None (JSON null), recursively, so the file is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def json_records(all_cells: dict[CellKey, CellStats], primary: set[CellKey], ranking: Ranking | None,
                 roles: dict[str, str], order: list[str]) -> list[dict]:
    """One record per (dataset, protocol, metric, method): the cell's summary, the paired
    comparison to the baseline (null for the baseline itself or without one), and the method's
    overall average rank (null when it is not ranked)."""
    avg = ranking.avg_ranks if ranking else {}
    out = []
    keys = sorted(all_cells, key=lambda k: (k.is_transfer, k.dataset, natural_key(k.protocol), k.metric))
    for key in keys:
        cell = all_cells[key]
        for method in (m for m in order if m in cell.summaries):
            s = cell.summaries[method]
            c = cell.comparisons.get(method, {})
            nan = float("nan")
            out.append({
                "dataset": key.dataset, "protocol": key.protocol, "metric": key.metric, "method": method,
                "n": s["n"], "mean": s["mean"], "std": s["std"], "ci_low": s["ci_low"], "ci_high": s["ci_high"],
                "diff": c.get("diff", nan), "diff_ci_low": c.get("diff_ci_low", nan),
                "diff_ci_high": c.get("diff_ci_high", nan), "p_wilcoxon": c.get("p_wilcoxon", nan),
                "p_ttest": c.get("p_ttest", nan), "p_holm": c.get("p_holm", nan),
                "avg_rank": avg.get(method, nan),
                "verdict": c.get("verdict"), "n_paired": c.get("n"), "paired_seeds": c.get("paired_seeds"),
                "min_attainable_p": c.get("min_attainable_p", nan),
                "seeds": s["seeds"], "values": s["values"],
                "baseline": cell.baseline, "role": roles.get(method, "method"),
                "primary": key in primary, "transfer": key.is_transfer,
                "higher_is_better": cell.higher_is_better,
            })
    return _clean(out)


def provenance_lines(records: list[RunRecord], n_failed: int, baseline: str, roles: dict[str, str],
                     n_running: int = 0) -> list[str]:
    prov = collect_provenance(records)
    n = prov.n_runs
    lines = ["## Provenance", "",
             f"- **Runs:** {n} completed (the newest per config hash), {len(set(prov.run_hashes))} distinct "
             f"config hashes, store digest `{prov.store_digest}` (sha256 of the sorted run hashes); "
             f"{n_failed} failed or interrupted{f', {n_running} in progress' if n_running else ''}.",
             f"- **Code:** git {describe(prov.commits)}.",
             f"- **Hardware:** CPU {describe(prov.cpus)}; GPU {describe(prov.gpus)}; "
             f"Python {describe(prov.pythons)}.",
             "- **Packages** (as Sacred recorded them in run.json): "
             + "; ".join(f"{name} {describe(prov.packages[name])}" for name in KEY_PACKAGES) + ".",
             f"- **Seeds:** {', '.join(str(s) for s in prov.seeds) or 'none'}."]
    for dataset, settings in sorted(prov.settings.items()):
        parts = [f"{s} {describe(settings[s])}" for s in KEY_SETTINGS if settings[s]]
        if parts:
            lines.append(f"- **Settings, {dataset}:** " + "; ".join(parts) + ".")
    if prov.started:
        lines.append(f"- **Run start times:** {prov.started[0]} to {prov.started[1]}.")
    refs = [m for m, r in sorted(roles.items()) if r == "reference"]
    lines.append(f"- **Baseline:** {baseline}; α = {ALPHA}; reference rows (ranked, not SSL methods): "
                 f"{', '.join(refs) or 'none'}.")
    return lines + [""]


def ranking_lines(ranking: Ranking | None, roles: dict[str, str], figures_dir: Path) -> list[str]:
    lines = ["## Overall ranking", ""]
    if ranking is None:
        return lines + ["Not enough to rank: at least 2 methods with scores on a common cell are needed.", ""]
    f = ranking.friedman
    k, n = len(ranking.avg_ranks), len(ranking.cells)
    lines += [f"Average rank (1 = best) of each method over the N = {n} cells dataset × protocol on each "
              "dataset's primary metric, each method scored by its mean over seeds; reference rows are "
              "ranked too.", "", ranking_table(ranking, roles), "",
              f"Friedman χ² = {f['chi2']:.3f} ({fmt_p(f['p_friedman'], True)}); Iman-Davenport F = "
              f"{_statistic(f['F'])} ({fmt_p(f['p_iman_davenport'], True)}); Nemenyi critical difference "
              f"(α = {ranking.alpha}, k = {k}, N = {n}): CD = {ranking.cd:.3f}.", ""]
    cd_diagram(ranking.avg_ranks, ranking.cd, figures_dir / CD_FIGURE,
                     title=f"average rank over {n} cell{'s' if n != 1 else ''}")
    lines += [f"![critical-difference diagram](figures/{CD_FIGURE})", ""]
    if ranking.dropped:
        dropped = ", ".join(f"{c.dataset}/{c.protocol}" for c in ranking.dropped)
        lines += [f"Not ranked (some method has no score there): {dropped}.", ""]
    return lines


def _statistic(value: float) -> str:
    if math.isnan(value):
        return "undefined"
    return "∞" if math.isinf(value) else f"{value:.3f}"


READING = ("Cells: test-split {metric}, mean ± std over seeds, then the 95% t-interval of the mean; the "
           "best mean per column in bold; (n=…) when a method has another number of seeds than most. ")
READING_DIFF = ("Δ vs {baseline}: mean of the per-seed differences method − {baseline} over the seeds both "
                "have, its 95% CI, the two-sided exact Wilcoxon signed-rank p Holm-adjusted across the methods "
                "of the column, and ▲ better / ▼ worse (p_Holm ≤ {alpha}) or n.s.; \"n too small\" where no "
                "outcome of the Wilcoxon test could reach {alpha} with that many pairs. ")
READING_NO_BASELINE = "The baseline {baseline} has no runs beside another method: no paired comparisons. "
READING_MORE = "Other metrics and the paired t-test p are in leaderboard.json."


def dataset_lines(datasets: list[str], cells: dict[CellKey, CellStats], primary_of: dict[str, str],
                  curves: dict, order: list[str], roles: dict[str, str], baseline: str,
                  figures_dir: Path, notes: dict[str, list[str]] | None = None) -> list[str]:
    compared = any(c.baseline is not None for c in cells.values())
    reading = READING + (READING_DIFF if compared else READING_NO_BASELINE) + READING_MORE
    lines = ["## Results per dataset", "", reading.format(metric="primary metric", baseline=baseline, alpha=ALPHA), ""]
    for dataset in datasets:
        own = [cells[k] for k in cells if k.dataset == dataset and not k.is_transfer]
        metric = primary_of.get(dataset, own[0].key.metric if own else "?")
        lines += [f"### {dataset} (primary metric: {metric})", ""]
        if own:
            lines += [results_table(own, order, roles, baseline), ""]
        for note in (notes or {}).get(dataset, []):  # runs of other pretraining code, or unknown
            lines += [f"*{note}*", ""]
        if dataset in curves:
            name = f"curves-{safe_name(dataset)}.png"
            plot_curves(curves[dataset], dataset, figures_dir / name)
            lines += [f"![{dataset} training curves](figures/{name})", ""]
    return lines


def failed_lines(failed: list[RunRecord], completed_hashes: set[str]) -> list[str]:
    if not failed:
        return []
    lines = ["## Failed runs", ""]
    for r in failed:
        dataset, method, seed = r.key
        reason = " ".join((r.fail_reason or r.status.lower()).split())
        later = " (completed in a later run)" if r.config.get("run_hash") in completed_hashes else ""
        lines.append(f"- run {r.run_id}: {dataset} / {method} / seed {seed}, {r.status}{later}: {reason}")
    return lines + [""]


def running_lines(running: list[RunRecord]) -> list[str]:
    """Runs in progress when the leaderboard was written: not in the tables yet."""
    if not running:
        return []
    lines = ["## Runs in progress", ""]
    for r in running:
        dataset, method, seed = r.key
        lines.append(f"- run {r.run_id}: {dataset} / {method} / seed {seed}")
    return lines + [""]


def superseded_lines(superseded: list[tuple[RunRecord, RunRecord]]) -> list[str]:
    """Completed runs left out because a newer run of another config has the same dataset,
    method and seed: said here, so that two configs in one store are never merged silently."""
    if not superseded:
        return []
    lines = ["## Runs left out (same dataset, method and seed as a newer run)", "",
             f"{len(superseded)} completed run(s) share their dataset, method and seed with a newer run of "
             "another config; the tables use the newer one only. To compare two recipes, give each its "
             "own `benchmark.recipe` (it becomes part of the dataset label) or its own --results-dir.", ""]
    for old, new in superseded:
        dataset, method, seed = old.key
        diff = config_differences(old.config, new.config)
        shown = ", ".join(diff[:6]) + (f" and {len(diff) - 6} more" if len(diff) > 6 else "")
        lines.append(f"- run {old.run_id} ({dataset} / {method} / seed {seed}) left out for run {new.run_id}; "
                     f"they differ in {shown or 'nothing but the hash'}")
    return lines + [""]


def other_data_lines(left_out: list[tuple[RunRecord, RunRecord, list[str]]]) -> list[str]:
    """Completed runs made on other data than the newest run of their dataset (a card's split or
    pixels, or the source files, changed): never averaged with the newer ones."""
    if not left_out:
        return []
    lines = ["## Runs left out (made on other data)", "",
             f"{len(left_out)} completed run(s) were made on other data than the newest run of their dataset; "
             "the tables use the runs on the newest data only. Run the same command again to re-run them "
             "on today's data.", ""]
    for old, new, reasons in left_out:
        dataset, method, seed = old.key
        lines.append(f"- run {old.run_id} ({dataset} / {method} / seed {seed}): {'; '.join(reasons)} "
                     f"by run {new.run_id}")
    return lines + [""]


def power_lines(cells: list[CellStats], ranking: Ranking | None) -> list[str]:
    lines = ["## Notes on power", ""]
    pairs = sorted({c["n"] for cell in cells for c in cell.comparisons.values() if c["n"] > 0})
    m = max((len(cell.comparisons) for cell in cells), default=0)
    if pairs:
        floors = ", ".join(f"n = {n}: {stats.min_attainable_wilcoxon_p(n):.4g}" for n in pairs)
        lines.append(f"- The smallest two-sided exact Wilcoxon p with n paired seeds is 2/2^n ({floors}); "
                     f"below n = 6 it cannot reach 0.05, and the tables say \"n too small\" instead of a p.")
        if m > 1:
            needed = math.ceil(math.log2(2 * m / ALPHA))
            lines.append(f"- Holm multiplies the smallest of the m = {m} p-values of a column by m, so the "
                         f"smallest adjusted p is m·2/2^n: a ▲/▼ needs n ≥ {needed} seeds here; with fewer, "
                         f"\"n.s.\" says little.")
        if any(c["verdict"] == "n too small" for cell in cells for c in cell.comparisons.values()):
            lines.append("- Some comparisons here are \"n too small\": run more seeds to test them.")
    else:
        lines.append("- No paired comparison with the baseline: it has no runs beside another method.")
    if ranking is not None:
        k, n = len(ranking.avg_ranks), len(ranking.cells)
        spread = max(ranking.avg_ranks.values()) - min(ranking.avg_ranks.values())
        text = (f"- Ranking: k = {k} methods over N = {n} cells; the Nemenyi CD is {ranking.cd:.2f} ranks "
                f"(the widest possible gap is k − 1 = {k - 1}; observed {spread:.2f}).")
        if ranking.cd >= k - 1:
            text += " With so few cells no two methods can be told apart: N too small."
        if n < 2:
            text += " Friedman needs N ≥ 2 cells: its p is undefined here."
        lines.append(text)
    lines.append("- Seeds pair runs on the same fixed test split; they vary initialisation, augmentation and "
                 "label subsets, not the test data, so the CIs do not cover test-set sampling.")
    return lines + [""]


def write_leaderboard(results_dir: Path, baseline: str = "byol", stale_after_s: float = STALE_AFTER_S) -> Path:
    """Rebuild LEADERBOARD.md, leaderboard.json and figures/ under `results_dir` from its runs/
    alone (runs describe their dataset, method role and transfer targets)."""
    results_dir = Path(results_dir)
    figures_dir = results_dir / "figures"
    all_records = load_runs(results_dir / "runs", stale_after_s)
    current, other_data = newest_data(latest_completed(all_records))
    records, superseded = one_per_key(current)
    failed = [r for r in all_records if r.status in NOT_COMPLETED]
    running = [r for r in all_records if r.status == "RUNNING"]
    results_dir.mkdir(parents=True, exist_ok=True)

    primary_of = dataset_primary_metrics(records)
    values = collect_cells(records)
    cells = {k: cell_stats(k, v, baseline, ALPHA) for k, v in values.items()}
    primary_keys = primary_cells(cells, primary_of, transfer_primary_metrics(records))
    primary = {k: cells[k] for k in primary_keys}
    ranking = overall_ranking(primary, ALPHA)
    roles = method_roles(records, baseline)
    order = method_order(roles)

    lines = ["# Leaderboard", "",
             f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from results/runs alone "
             "(`python run_bench.py --leaderboard` rebuilds it).", ""]
    if records:
        lines += provenance_lines(records, len(failed), baseline, roles, len(running))
        lines += ranking_lines(ranking, roles, figures_dir)
        datasets = sorted({r.key[0] for r in records})
        curves = training_curves(records)
        by_label: dict[str, list[RunRecord]] = {d: [] for d in datasets}
        for r in records:  # one pass, not one per dataset label
            by_label[r.key[0]].append(r)
        notes = {d: code_notes(by_label[d]) for d in datasets}
        lines += dataset_lines(datasets, primary, primary_of, curves, order, roles, baseline, figures_dir, notes)
        transfer = [primary[k] for k in primary_keys if k.is_transfer]
        if transfer:
            lines += ["## Transfer", "",
                      "Pretrained on the dataset on the left, evaluated on the one the protocol names; "
                      "cells read as in the tables above.", "",
                      results_table(transfer, order, roles, baseline, with_dataset=True), ""]
        lines += ["## Cost (mean over seeds)", "", cost_table(collect_costs(records), order, roles), ""]
    else:
        lines += ["No completed runs yet.", ""]
    lines += running_lines(running)
    lines += failed_lines(failed, {r.config.get("run_hash") for r in records})
    lines += other_data_lines(other_data)
    lines += superseded_lines(superseded)
    if records:
        lines += power_lines(list(primary.values()), ranking)

    # Atomic: a reader (a dashboard, a second invocation) never sees a half-written file.
    path = atomic_write_text(results_dir / "LEADERBOARD.md", "\n".join(lines))
    board = json_records(cells, set(primary_keys), ranking, roles, order)
    atomic_write_text(results_dir / "leaderboard.json", json.dumps(board, indent=1, allow_nan=False) + "\n")
    return path
