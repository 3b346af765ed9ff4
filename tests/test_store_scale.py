"""A store read once per command: --dry-run, --status and --leaderboard read each run's JSON files
at most once (no per-run pass over the whole store), on a synthetic sweep of 300 runs built by
benchmarks/store.py (failed, interrupted, running and duplicate runs among them). A property of
the code, not a timing: benchmarks/store.py times the same commands on 10,000 runs."""
import builtins
import io
from collections import Counter
from pathlib import Path

import pytest

from benchmarks.store import build_store
from byol_bench.cli import main


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("store")
    results = build_store(folder, 300, methods=("byol", "random-init", "supervised"),
                          datasets=("digits", "mnist"), seeds=20, epochs=5)
    return folder / "grid.yaml", results


def reads_of(monkeypatch, runs_dir: Path) -> Counter:
    """Counts every open of a file under `runs_dir` (builtins.open and io.open, which pathlib uses)."""
    counts: Counter = Counter()
    real_open = io.open
    prefix = str(runs_dir.resolve())

    def counting_open(file, *args, **kwargs):
        if isinstance(file, (str, Path)) and str(Path(file).resolve()).startswith(prefix):
            counts[str(Path(file).resolve())] += 1
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(io, "open", counting_open)
    monkeypatch.setattr(builtins, "open", counting_open)
    return counts


@pytest.mark.parametrize("command", ["--dry-run", "--status", "--leaderboard"])
def test_each_run_file_is_read_at_most_once(store, command, monkeypatch, capsys):
    grid, results = store
    runs = results / "runs"
    counts = reads_of(monkeypatch, runs)
    assert main(["--config", str(grid), "--results-dir", str(results), command]) == 0
    monkeypatch.undo()
    folders = [p for p in runs.iterdir() if p.name.isdigit()]
    assert len(folders) == 300
    twice = {path: n for path, n in counts.items() if n > 1}
    assert not twice, f"{command} read {len(twice)} files more than once, e.g. {next(iter(twice.items()))}"
    for name in ("config.json", "run.json"):  # every run is read (the counter sees the reads)
        assert all(counts[str((f / name).resolve())] == 1 for f in folders), name
    metrics = sum(n for path, n in counts.items() if path.endswith("metrics.json"))
    if command == "--leaderboard":
        assert 0 < metrics <= 300  # the curves: completed runs only, once each
    else:
        assert metrics == 0  # planning needs the results, never the curves
    out = capsys.readouterr().out
    if command == "--status":
        assert " done, " in out and " queued" in out.splitlines()[-1]


def test_store_reader_reads_again_only_new_and_unfinished_runs(tmp_path, monkeypatch):
    """The grid runner's check before each run: a completed run is read once, a run that was
    RUNNING is read again (it may have completed since), a new folder is picked up."""
    import json
    from byol_bench.store.records import StoreReader

    runs = tmp_path / "runs"

    def write(run_id: str, status: str) -> None:
        (runs / run_id).mkdir(parents=True, exist_ok=True)
        (runs / run_id / "config.json").write_text(json.dumps({"run_hash": f"h{run_id}", "method": "byol"}))
        (runs / run_id / "run.json").write_text(json.dumps(
            {"status": status, "heartbeat": "2026-01-01T00:00:00", "result": {"knn/accuracy": 0.5}}))

    write("1", "COMPLETED")
    write("2", "RUNNING")
    store = StoreReader(runs)
    assert [(r.run_id, r.status) for r in store.load()] == [("1", "COMPLETED"), ("2", "INTERRUPTED")]
    write("2", "COMPLETED")
    write("3", "FAILED")
    counts = reads_of(monkeypatch, runs)
    assert [(r.run_id, r.status) for r in store.load()] == [("1", "COMPLETED"), ("2", "COMPLETED"), ("3", "FAILED")]
    monkeypatch.undo()
    assert not any("/1/" in path for path in counts)  # completed before: kept, not read again
    assert counts[str((runs / "2" / "run.json").resolve())] == 1
