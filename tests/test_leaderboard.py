"""byol_bench.report.leaderboard on a fake Sacred run store with known values: the tables and JSON carry
exactly byol_bench.report.stats' numbers (seed-paired), the ranking, provenance, failed runs, transfer
and cost tables, figures, strict JSON, and the same output when rebuilt."""
import json
import math
import re

import numpy as np
import pytest

from byol_bench.report import stats
from byol_bench.report.figure_keys import code_version, drawing_version, stored_key
from byol_bench.report.figures import CODE, Curve, curves_key, logged_entry, mean_curve
from byol_bench.report.leaderboard import write_leaderboard
from byol_bench.report.cells import CellKey, choose_primary_metric, compare_by_seed, transfer_target
from byol_bench.report.tables import pipe_table


def reference_comparisons(table, baseline, alpha=0.05):
    """Brute force of a cell's comparisons on values aligned by seed: each method's paired
    comparison with the baseline, Holm over the methods, the verdict."""
    records = {m: stats.paired_comparison(v, table[baseline]) for m, v in table.items() if m != baseline}
    for record, p_holm in zip(records.values(), stats.holm([r["p_wilcoxon"] for r in records.values()])):
        record["p_holm"] = float(p_holm)
        record["verdict"] = stats.verdict(record["p_holm"], record["diff"], record["min_attainable_p"],
                                          alpha, True, family_size=len(records))
    return records

METHODS = ("byol", "byol-tracin", "random-init")
SHIFT = {"byol": 0.0, "byol-tracin": 0.03, "random-init": -0.2}   # per-method offset of every score
SEEDS = tuple(range(7))
# dermamnist: the baseline lacks seed 6 and byol-tracin lacks seed 5 (paired on common seeds only).
MISSING = {("dermamnist", "byol"): {6}, ("dermamnist", "byol-tracin"): {5}}
TRANSFER = "transfer-dermamnist-linear"
PROTOCOLS = {"digits": ("linear", "knn", TRANSFER), "dermamnist": ("linear", "knn")}
METRICS = ("accuracy", "balanced_accuracy")
COST = {"byol": 100.0, "byol-tracin": 80.0, "random-init": 0.0}


def known_value(dataset, protocol, metric, method, seed) -> float:
    """A fixed score per run: a per-method offset plus seed noise, no ties between differences."""
    base = {"digits": 0.8, "dermamnist": 0.6}[dataset] + 0.02 * PROTOCOLS[dataset].index(protocol)
    rng = np.random.default_rng([list(PROTOCOLS).index(dataset), PROTOCOLS[dataset].index(protocol),
                                 METRICS.index(metric), METHODS.index(method), seed])
    return float(base + SHIFT[method] + rng.uniform(-0.01, 0.01) + (0.01 if metric == "accuracy" else 0.0))


def write_run(runs, run_id, config, run):
    folder = runs / str(run_id)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "run.json").write_text(json.dumps(run))
    return folder


def build_store(root, seeds=SEEDS, datasets=("digits", "dermamnist"), with_failed=True, nan_cell=True):
    """Sacred-shaped folders results/runs/<id>/{config,run,metrics}.json for every
    dataset x method x seed (less MISSING), plus one failed run."""
    runs = root / "runs"
    run_id = 0
    for dataset in datasets:
        for method in METHODS:
            for seed in seeds:
                if seed in MISSING.get((dataset, method), ()):
                    continue
                run_id += 1
                result = {f"{p}/{m}": known_value(dataset, p, m, method, seed)
                          for p in PROTOCOLS[dataset] for m in METRICS}
                result["knn/macro_auroc"] = float("nan") if (nan_cell and seed == 0) else 0.9
                result.update({"cost/pretrain_img_per_s": COST[method] + seed, "cost/peak_mem_mb": 500.0 + seed,
                               "cost/pretrain_s": 10.0, "cost/wall_s": 12.0 + seed})
                config = {"dataset": dataset, "method": method, "seed": seed,
                          "run_hash": f"{dataset}-{method}-{seed}", "protocols": list(PROTOCOLS[dataset]),
                          "backbone": {"name": "small-cnn"}, "pretrain": {"epochs": 3, "batch_size": 32},
                          "data": {"image_size": 16}}
                run = {"status": "COMPLETED", "result": result, "start_time": f"2026-01-01T00:00:{run_id:02d}",
                       "host": {"hostname": "box", "cpu": "Test CPU 9000", "python_version": "3.11.7",
                                "gpus": {"driver_version": "550",
                                         "gpus": [{"model": "NVIDIA H100", "total_memory": 81559}]}},
                       "experiment": {"dependencies": ["accelerate==1.15.0", "numpy==2.4.6", "sacred==0.8.7",
                                                       "torch==2.5.1", "torchvision==0.20.1"],
                                      "repositories": [{"commit": "abcdef0123456789", "dirty": False, "url": "x"}]}}
                folder = write_run(runs, run_id, config, run)
                if method != "random-init":   # random-init does not train, so it logs no curve
                    losses = [2.0 - 0.3 * epoch - 0.01 * seed for epoch in range(3)]
                    (folder / "metrics.json").write_text(json.dumps(
                        {"train/loss": {"steps": [1, 2, 3], "values": losses, "timestamps": ["t"] * 3}}))
    if with_failed:
        run_id += 1
        write_run(runs, run_id, {"dataset": datasets[0], "method": "byol-tracin", "seed": 99, "run_hash": "failed-1"},
                  {"status": "FAILED", "fail_trace": ["Traceback (most recent call last):\n",
                                                      "ValueError: non-finite training loss | at epoch 2\n"]})
    return root


def seed_values(dataset, protocol, metric, method, seeds=SEEDS):
    return {s: known_value(dataset, protocol, metric, method, s)
            for s in seeds if s not in MISSING.get((dataset, method), ())}


def strict_json(text):
    def reject(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")
    return json.loads(text, parse_constant=reject)


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    root = build_store(tmp_path_factory.mktemp("results"))
    path = write_leaderboard(root, baseline="byol")
    records = strict_json((root / "leaderboard.json").read_text())
    return root, path.read_text(), records


def find(records, dataset, protocol, metric, method):
    matches = [r for r in records if (r["dataset"], r["protocol"], r["metric"], r["method"])
               == (dataset, protocol, metric, method)]
    assert len(matches) == 1, (dataset, protocol, metric, method)
    return matches[0]


def test_json_records_have_the_contract_keys_and_are_strict_json(board):
    _, _, records = board
    required = {"dataset", "protocol", "metric", "method", "n", "mean", "std", "ci_low", "ci_high", "diff",
                "p_wilcoxon", "p_ttest", "p_holm", "avg_rank"}
    assert records and all(required <= set(r) for r in records)
    # seed 0's NaN AUROC: the cell's mean is NaN, written as null, and the file stays strict JSON.
    auroc = find(records, "digits", "knn", "macro_auroc", "byol")
    assert auroc["mean"] is None and auroc["n"] == len(SEEDS) and auroc["values"][0] is None
    assert find(records, "digits", "linear", "accuracy", "byol")["diff"] is None   # the baseline itself


def test_summaries_equal_summarize_on_the_known_values(board):
    _, _, records = board
    for dataset, protocols in PROTOCOLS.items():
        for protocol in protocols:
            for metric in METRICS:
                for method in METHODS:
                    values = seed_values(dataset, protocol, metric, method)
                    expected = stats.summarize([values[s] for s in sorted(values)])
                    record = find(records, dataset, protocol, metric, method)
                    assert record["seeds"] == sorted(values)
                    for key in ("n", "mean", "std", "ci_low", "ci_high"):
                        assert record[key] == pytest.approx(expected[key], rel=1e-12), key


def test_paired_numbers_equal_the_reference_when_all_seeds_present(board):
    _, _, records = board
    table = {m: [seed_values("digits", "linear", "accuracy", m)[s] for s in SEEDS] for m in METHODS}
    expected = reference_comparisons(table, "byol")
    for method, exp in expected.items():
        record = find(records, "digits", "linear", "accuracy", method)
        for key in ("diff", "diff_ci_low", "diff_ci_high", "p_wilcoxon", "p_ttest", "p_holm"):
            assert record[key] == pytest.approx(exp[key], rel=1e-12), (method, key)
        assert record["verdict"] == exp["verdict"]
        assert record["paired_seeds"] == list(SEEDS)
    # With 7 seeds and 2 comparisons the consistent shifts are significant both ways.
    assert find(records, "digits", "linear", "accuracy", "byol-tracin")["verdict"] == "better"
    assert find(records, "digits", "linear", "accuracy", "random-init")["verdict"] == "worse"


def test_a_method_missing_seeds_is_paired_on_the_common_ones_only(board):
    _, _, records = board
    base = seed_values("dermamnist", "linear", "balanced_accuracy", "byol")
    raw = {}
    for method, common in (("byol-tracin", [0, 1, 2, 3, 4]), ("random-init", [0, 1, 2, 3, 4, 5])):
        values = seed_values("dermamnist", "linear", "balanced_accuracy", method)
        record = find(records, "dermamnist", "linear", "balanced_accuracy", method)
        assert record["paired_seeds"] == common and record["n_paired"] == len(common)
        exp = stats.paired_comparison([values[s] for s in common], [base[s] for s in common])
        for key in ("diff", "diff_ci_low", "diff_ci_high", "p_wilcoxon", "p_ttest"):
            assert record[key] == pytest.approx(exp[key], rel=1e-12), (method, key)
        raw[method] = (record, exp["p_wilcoxon"])
    adjusted = stats.holm([p for _, p in raw.values()])
    for (record, _), p_holm in zip(raw.values(), adjusted):
        assert record["p_holm"] == pytest.approx(p_holm, rel=1e-12)
    # Five pairs can never reach 0.05 two-sided: no p is claimed for byol-tracin.
    assert raw["byol-tracin"][0]["verdict"] == "n too small"


def test_ranking_and_friedman_over_the_primary_cells(board):
    _, markdown, records = board
    cells = [("digits", "knn", "accuracy"), ("digits", "linear", "accuracy"),
             ("digits", TRANSFER, "balanced_accuracy"),   # the transfer target's primary metric
             ("dermamnist", "knn", "balanced_accuracy"), ("dermamnist", "linear", "balanced_accuracy")]
    methods = sorted(METHODS)
    matrix = np.array([[np.mean(list(seed_values(*cell, m).values())) for m in methods] for cell in cells])
    expected = dict(zip(methods, stats.average_ranks(matrix)))
    for method in methods:
        assert find(records, "digits", "linear", "accuracy", method)["avg_rank"] == pytest.approx(expected[method])
    primary = {(r["dataset"], r["protocol"], r["metric"]) for r in records if r["primary"]}
    assert primary == set(cells)
    friedman = stats.friedman_iman_davenport(matrix)
    cd = stats.nemenyi_cd(3, len(cells))
    assert f"Friedman χ² = {friedman['chi2']:.3f}" in markdown
    assert f"k = 3, N = {len(cells)}): CD = {cd:.3f}" in markdown
    ranking = markdown.split("## Overall ranking")[1].split("##")[0]
    rows = [line for line in ranking.splitlines() if re.match(r"\| \d", line)]
    assert [row.split("|")[2].strip() for row in rows] == ["byol-tracin", "byol", "random-init"]
    assert "| reference" in ranking and "![critical-difference diagram](figures/cd-diagram.png)" in markdown


def test_dataset_tables_show_ci_diff_holm_marker_and_bold_best(board):
    _, markdown, records = board
    digits = markdown.split("### digits")[1].split("###")[0]
    header = next(line for line in digits.splitlines() if line.startswith("| method"))
    assert "linear (accuracy, %)" in header and "Δ vs byol" in header and TRANSFER not in header
    tracin = next(line for line in digits.splitlines() if line.startswith("| byol-tracin "))
    r = find(records, "digits", "linear", "accuracy", "byol-tracin")
    pct = {k: 100 * r[k] for k in ("mean", "std", "ci_low", "ci_high", "diff", "diff_ci_low", "diff_ci_high")}
    assert f"**{pct['mean']:.1f} ± {pct['std']:.1f}** [{pct['ci_low']:.1f}, {pct['ci_high']:.1f}]" in tracin
    assert f"{pct['diff']:+.1f} [{pct['diff_ci_low']:+.1f}, {pct['diff_ci_high']:+.1f}], p={r['p_holm']:.3f} ▲" in tracin
    assert "random-init (reference)" in digits and "▼" in digits and "byol (baseline)" in digits
    dermamnist = markdown.split("### dermamnist (primary metric: balanced_accuracy)")[1].split("##")[0]
    assert "n too small (n=5 paired)" in dermamnist
    # Most methods have 6 seeds there; random-init's 7 are flagged and paired on 6.
    random_init = next(line for line in dermamnist.splitlines() if line.startswith("| random-init"))
    assert "(n=7)" in random_init and "(n=6 paired)" in random_init


def test_transfer_table_for_transfer_protocols(board):
    _, markdown, _ = board
    transfer = markdown.split("## Transfer")[1].split("\n## ")[0]
    assert f"digits → {TRANSFER} (balanced_accuracy, %)" in transfer
    assert "| byol-tracin" in transfer and "Δ vs byol" in transfer


def test_cost_failed_runs_provenance_and_power_notes(board):
    _, markdown, _ = board
    cost = markdown.split("## Cost")[1].split("\n## ")[0]
    mean_ips = np.mean([COST["byol-tracin"] + s for s in SEEDS])
    assert re.search(rf"\| digits +\| byol-tracin +\| {mean_ips:.1f} ", cost)
    failed = markdown.split("## Failed runs")[1].split("\n## ")[0]
    assert "digits / byol-tracin / seed 99, FAILED: ValueError: non-finite training loss | at epoch 2" in failed
    provenance = markdown.split("## Provenance")[1].split("\n## ")[0]
    for text in ("abcdef0123", "Test CPU 9000", "1 x NVIDIA H100", "torch 2.5.1", "torchvision 0.20.1",
                 "accelerate 1.15.0", "sacred 0.8.7", "Seeds:** 0, 1, 2, 3, 4, 5, 6", "40 completed", "1 failed"):
        assert text in provenance, text
    notes = markdown.split("## Notes on power")[1]
    assert "2/2^n" in notes and "n = 5: 0.0625" in notes and "k = 3 methods over N = 5 cells" in notes


def test_figures_written_and_linked(board):
    root, markdown, _ = board
    for name in ("cd-diagram.png", "curves-digits.png", "curves-dermamnist.png"):
        assert (root / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"(figures/{name})" in markdown


def test_rebuilding_gives_identical_output(board):
    root, markdown, _ = board
    json_before = (root / "leaderboard.json").read_bytes()
    figures_before = {p.name: p.read_bytes() for p in (root / "figures").iterdir()}
    write_leaderboard(root, baseline="byol")
    assert {p.name: p.read_bytes() for p in (root / "figures").iterdir()} == figures_before
    drop_date = lambda text: [line for line in text.splitlines() if not line.startswith("Generated ")]
    assert drop_date((root / "LEADERBOARD.md").read_text()) == drop_date(markdown)
    assert (root / "leaderboard.json").read_bytes() == json_before


def test_three_seeds_say_n_too_small_instead_of_a_p(tmp_path):
    build_store(tmp_path, seeds=(0, 1, 2), datasets=("digits",), with_failed=False, nan_cell=False)
    markdown = write_leaderboard(tmp_path).read_text()
    records = strict_json((tmp_path / "leaderboard.json").read_text())
    compared = [r for r in records if r["method"] != "byol"]
    assert compared and all(r["verdict"] == "n too small" for r in compared)
    table = markdown.split("### digits")[1].split("##")[0]
    assert "n too small (n=3)" in table and "p=" not in table
    assert "Failed runs" not in markdown


def test_no_baseline_runs_and_an_empty_store(tmp_path):
    assert "No completed runs yet." in write_leaderboard(tmp_path / "empty").read_text()
    assert strict_json((tmp_path / "empty" / "leaderboard.json").read_text()) == []
    build_store(tmp_path / "r", seeds=(0, 1), datasets=("digits",), with_failed=False)
    markdown = write_leaderboard(tmp_path / "r", baseline="supervised").read_text()
    assert "Δ vs" not in markdown and "| byol " in markdown
    records = strict_json((tmp_path / "r" / "leaderboard.json").read_text())
    assert all(r["diff"] is None and r["baseline"] is None for r in records)


def test_compare_by_seed_equals_the_reference_on_aligned_values():
    rng = np.random.default_rng(0)
    table = {m: list(rng.normal(size=8)) for m in ("a", "b", "c", "d")}
    by_seed = {m: dict(enumerate(v)) for m, v in table.items()}
    ours, theirs = compare_by_seed(by_seed, "a"), reference_comparisons(table, "a")
    for method in theirs:
        for key in ("n", "diff", "p_wilcoxon", "p_ttest", "p_holm", "verdict", "min_attainable_p"):
            assert ours[method][key] == theirs[method][key], key
    # A NaN seed drops out of that method's pairs only.
    by_seed["b"][3] = math.nan
    assert compare_by_seed(by_seed, "a")["b"]["paired_seeds"] == [0, 1, 2, 4, 5, 6, 7]


def test_transfer_target_and_metric_choice():
    primary = {"isic": "balanced_accuracy", "dermamnist": "balanced_accuracy", "digits": "accuracy",
               "chestxray14": "mean_auroc", "pneumonia": "balanced_accuracy"}
    assert transfer_target("transfer-dermamnist-linear", "isic", primary) == "dermamnist"
    assert transfer_target("transfer-isic-dermamnist-finetune", "isic", primary) == "dermamnist"
    assert transfer_target("transfer-linear", "isic", primary) is None
    assert choose_primary_metric("chestxray14", "transfer-pneumonia-linear",
                                 ["accuracy", "balanced_accuracy", "mean_auroc"], primary) == "balanced_accuracy"
    assert choose_primary_metric("chestxray14", "linear", ["accuracy", "mean_auroc"], primary) == "mean_auroc"
    assert choose_primary_metric("unknown", "linear", ["macro_f1", "accuracy"], primary) == "accuracy"
    assert CellKey("a", "transfer-b-linear", "m").is_transfer and not CellKey("a", "linear", "m").is_transfer


def test_pipe_tables_keep_number_text_and_escape_bars():
    table = pipe_table([["a|b", "0.900", "1e3"]], ["method", "x|y", "z"])
    assert "a\\|b" in table and "x\\|y" in table and "0.900" in table and "1e3" in table
    assert all(line.count("|") - line.count("\\|") == 4 for line in table.splitlines())


def test_runs_of_another_config_under_one_key_are_listed_not_merged(tmp_path):
    """Two configs with the same dataset/method/seed: the newer run counts, the older one is
    listed with what differs; a recipe name keeps both, as separate dataset labels."""
    runs = tmp_path / "runs"
    base = {"dataset": "digits", "method": "byol", "seed": 0, "protocols": ["linear"],
            "pretrain": {"epochs": 3}}
    write_run(runs, 1, {**base, "run_hash": "a"}, {"status": "COMPLETED", "result": {"linear/accuracy": 0.5}})
    write_run(runs, 2, {**base, "run_hash": "b", "pretrain": {"epochs": 9}},
              {"status": "COMPLETED", "result": {"linear/accuracy": 0.9}})
    write_run(runs, 3, {**base, "run_hash": "c", "recipe": "garg-jain-code"},
              {"status": "COMPLETED", "result": {"linear/accuracy": 0.7}})
    write_leaderboard(tmp_path)
    board = (tmp_path / "LEADERBOARD.md").read_text()
    assert "run 1 (digits / byol / seed 0) left out for run 2; they differ in pretrain.epochs" in board
    assert "### digits (primary metric: accuracy)" in board
    assert "### digits [garg-jain-code] (primary metric: accuracy)" in board
    records = json.loads((tmp_path / "leaderboard.json").read_text())
    by_dataset = {r["dataset"]: r["mean"] for r in records if r["protocol"] == "linear"}
    assert by_dataset == {"digits": 0.9, "digits [garg-jain-code]": 0.7}


def drawn(root):
    """Each PNG's identity: a redrawn figure is a new file (written beside, then renamed)."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (root / "figures").glob("*.png")}


def test_figures_are_drawn_again_only_when_their_inputs_change(tmp_path):
    root = build_store(tmp_path, seeds=(0, 1, 2), with_failed=False)
    write_leaderboard(root, baseline="byol")
    first = drawn(root)
    assert set(first) == {"cd-diagram.png", "curves-digits.png", "curves-dermamnist.png"}
    assert all(stored_key(root / "figures" / name) for name in first)
    write_leaderboard(root, baseline="byol")  # the same store: every figure kept
    assert drawn(root) == first

    metrics = next(f for f in (root / "runs").iterdir() if f.name.isdigit() and (f / "metrics.json").exists()
                   and json.loads((f / "config.json").read_text())["dataset"] == "digits") / "metrics.json"
    curve = json.loads(metrics.read_text())
    curve["train/loss"]["values"][1] += 0.5  # one run of digits logged another loss
    metrics.write_text(json.dumps(curve))
    write_leaderboard(root, baseline="byol")
    second = drawn(root)
    assert {name for name in first if second[name] != first[name]} == {"curves-digits.png"}

    (root / "figures" / "curves-dermamnist.png").unlink()  # deleted: drawn again
    # Another figure's PNG in its place (its key is not this figure's): drawn again.
    (root / "figures" / "cd-diagram.png").write_bytes((root / "figures" / "curves-digits.png").read_bytes())
    write_leaderboard(root, baseline="byol")
    third = drawn(root)
    assert {name for name in second if third.get(name) != second[name]} == {"curves-dermamnist.png", "cd-diagram.png"}
    assert stored_key(root / "figures" / "cd-diagram.png") != stored_key(root / "figures" / "curves-digits.png")


def test_a_curve_figures_key_sees_every_input():
    steps = np.arange(1, 4)
    base = {"byol": Curve(steps, np.array([2.0, 1.5, 1.2]), np.array([0.1, 0.1, 0.05]), 3)}
    variants = [({"byol": Curve(steps, base["byol"].mean + [0, 0, 1e-12], base["byol"].std, 3)}, "digits"),
                ({"byol": Curve(steps, base["byol"].mean, base["byol"].std * 2, 3)}, "digits"),
                ({"byol": Curve(steps + 1, base["byol"].mean, base["byol"].std, 3)}, "digits"),
                ({"byol": Curve(steps, base["byol"].mean, base["byol"].std, 4)}, "digits"),
                ({"byol-nn": base["byol"]}, "digits"),
                ({**base, "byol-nn": base["byol"]}, "digits"),
                (base, "mnist")]
    keys = {curves_key(curves, dataset) for curves, dataset in [(base, "digits"), *variants]}
    assert len(keys) == 1 + len(variants)
    before = curves_key(base, "digits")
    import matplotlib
    with matplotlib.rc_context({"lines.linewidth": 3.0}):  # matplotlib's settings draw the figure too
        assert curves_key(base, "digits") != before
    assert curves_key(base, "digits") == before
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(matplotlib, "__version__", "0.0")
        code_version.cache_clear()
        assert curves_key(base, "digits") != before
    code_version.cache_clear()
    assert drawing_version(CODE) != drawing_version(CODE.with_name("stats.py"))  # and the drawing code


def test_logged_entry_is_the_full_decode():
    texts = ['{"a": {"steps": [1], "values": [2]}, "train/loss": {"steps": [0, 1], "values": [3.5, 2.25]}}',
             '{\n  "train/loss" :\n {"steps": [0], "timestamps": ["t"], "values": [1e-3]},\n'
             '  "train/loss/byol": {"steps": [1], "values": [9]}\n}\n',
             '{"train\\/loss": {"steps": [0], "values": [1.0]}}',  # escaped: found by the full decode
             '{"train/loss": {"steps": [0], "values": [1.0]}, "train/loss": {"steps": [5], "values": [2.0]}}',
             '{"x": {"steps": [0], "timestamps": ["train/loss"], "values": [1.0]}, "train/loss": {"steps": [7]}}',
             '{"train/loss": {"steps": [7]}, "x": {"steps": [0], "timestamps": ["train/loss"], "values": [1.0]}}']
    for text in texts:
        assert logged_entry(text, "train/loss") == json.loads(text)["train/loss"], text
    with pytest.raises(KeyError):
        logged_entry('{"a": {"steps": [1]}}', "train/loss")
    with pytest.raises(json.JSONDecodeError):  # a truncated file is no curve, as before
        logged_entry('{"train/loss": {"steps": [0], "values": [1.0]}, "b": [1, 2', "train/loss")


def test_mean_curve_is_the_per_step_mean_and_std_bit_for_bit():
    def per_step(curves):  # the computation before the (steps, seeds) array
        steps = sorted({s for c in curves for s in c})
        values = [[c[s] for c in curves if s in c and math.isfinite(c[s])] for s in steps]
        keep = [i for i, v in enumerate(values) if v]
        return ([steps[i] for i in keep], [np.mean(values[i]) for i in keep],
                [np.std(values[i], ddof=1) if len(values[i]) > 1 else 0.0 for i in keep])

    rng = np.random.default_rng(0)
    for trial in range(200):
        seeds, n = int(rng.integers(1, 25)), int(rng.integers(1, 40))
        curves = [{s: float(rng.normal(1.0, 0.3) * 10.0 ** rng.integers(-3, 3)) for s in range(n)}
                  for _ in range(seeds)]
        if trial % 4 == 1:
            curves[0].pop(0, None)  # a run that missed a step
        if trial % 4 == 2:
            curves[-1][n - 1] = float("nan")
        steps, mean, std = per_step(curves)
        got = mean_curve(curves)
        assert got.steps.tolist() == steps and got.n_seeds == seeds
        assert got.mean.tobytes() == np.array(mean).tobytes() and got.std.tobytes() == np.array(std).tobytes()
