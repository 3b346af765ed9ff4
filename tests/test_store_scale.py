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


def spec_of(run_hash: str):
    from byol_bench.plan.grid import RunSpec
    return RunSpec("?", "?", 0, {"run_hash": run_hash})


def outcomes_read_whole(hashes, runs: Path, stale: float, since: dict) -> dict:
    """The launchers' poll before the watch: every run of the store read at every poll."""
    from byol_bench.store.records import load_runs
    out = dict.fromkeys(hashes)
    for record in load_runs(runs, stale):
        if record.config.get("run_hash") in out and int(record.run_id) > since.get(record.config["run_hash"], 0):
            out[record.config["run_hash"]] = record.status
    return out


def test_a_launchers_poll_reads_only_the_runs_it_waits_on_and_what_changed(store, tmp_path, monkeypatch):
    """local/slurm launchers poll the store every few seconds: after the one read when the command
    starts, a poll opens no file of a run it does not wait on, and nothing when nothing changed;
    its answers are those of reading the whole store each time (stale RUNNING, failed, re-runs)."""
    import json
    import shutil
    from datetime import datetime, timezone
    from byol_bench.launch.common import watch
    from byol_bench.store.records import load_runs

    runs = tmp_path / "runs"
    shutil.copytree(store[1] / "runs", runs)
    records = load_runs(runs)

    def write(run_id: int, run_hash: str, status: str) -> Path:
        folder = runs / str(run_id)
        folder.mkdir(exist_ok=True)
        if not (folder / "config.json").exists():
            (folder / "config.json").write_text(json.dumps({"run_hash": run_hash}))
        now = datetime.now(timezone.utc).replace(tzinfo=None).isoformat()
        (folder / "run.json").write_text(json.dumps({"status": status, "heartbeat": now, "result": {}}))
        return folder

    running = next(r for r in reversed(records) if r.status == "INTERRUPTED")
    write(int(running.run_id), running.config["run_hash"], "RUNNING")  # alive when the command starts
    twice = [h for h, n in Counter(r.config["run_hash"] for r in records).items() if n > 1]
    hashes = [running.config["run_hash"], twice[0], twice[1], "queued-hash"]
    stale = 120.0
    launched = watch([spec_of(h) for h in hashes], runs, stale)
    ended = [(r.config["run_hash"], int(r.run_id)) for r in records if r.run_id != running.run_id]
    assert launched.since == {h: max(i for g, i in ended if g == h) for h in hashes if any(g == h for g, _ in ended)}
    assert set(launched.since) == set(hashes[1:3])
    counts = reads_of(monkeypatch, runs)
    first = launched.poll()
    monkeypatch.undo()
    assert not counts, f"a poll with nothing changed opened {len(counts)} files"
    assert first == outcomes_read_whole(hashes, runs, stale, launched.since) == \
        {hashes[0]: "RUNNING", hashes[1]: None, hashes[2]: None, "queued-hash": None}

    top = max(int(r.run_id) for r in records)
    mine, other = write(top + 1, hashes[1], "RUNNING"), write(top + 2, "another-hash", "COMPLETED")
    write(top + 3, "queued-hash", "FAILED")
    counts = reads_of(monkeypatch, runs)
    assert launched.poll() == {hashes[0]: "RUNNING", hashes[1]: "RUNNING", hashes[2]: None,
                               "queued-hash": "FAILED"}
    opened = {str(Path(p).relative_to(runs.resolve())) for p in counts}
    assert opened == {f"{top + 1}/config.json", f"{top + 1}/run.json", f"{top + 2}/config.json",
                      f"{top + 3}/config.json", f"{top + 3}/run.json"}, opened  # not {top + 2}/run.json
    assert all(n == 1 for n in counts.values())
    monkeypatch.undo()
    write(top + 1, hashes[1], "COMPLETED")
    write(int(running.run_id), hashes[0], "INTERRUPTED")  # the run alive at the start was stopped
    counts = reads_of(monkeypatch, runs)
    states = launched.poll()
    assert states == {hashes[0]: "INTERRUPTED", hashes[1]: "COMPLETED", hashes[2]: None, "queued-hash": "FAILED"}
    assert {str(Path(p).relative_to(runs.resolve())) for p in counts} == {f"{top + 1}/run.json",
                                                                          f"{running.run_id}/run.json"}
    counts.clear()
    assert launched.poll() == states and not counts
    final = launched.poll(fresh=True)  # the closing look reads every watched run again, and only those
    monkeypatch.undo()
    assert final == states == outcomes_read_whole(hashes, runs, stale, launched.since)
    assert {str(Path(p).relative_to(runs.resolve())).split("/")[0] for p in counts} == \
        {str(n) for h in hashes for n in launched.folders().get(h, []) if int(n) > launched.since.get(h, 0)}
    assert mine.name in launched.folders()[hashes[1]] and other.name not in sum(launched.folders().values(), [])


def test_a_run_alive_when_last_read_is_read_again_before_it_is_judged_stale(tmp_path, monkeypatch):
    """Time alone turns a RUNNING run INTERRUPTED (its heartbeat grows old): the watch reads its
    run.json again before saying so (a late-shown heartbeat, NFS), and then no more while unchanged."""
    import json
    import time
    from datetime import datetime, timedelta, timezone
    from byol_bench.store.watch import RunWatch

    runs = tmp_path / "runs"
    (runs / "1").mkdir(parents=True)
    (runs / "1" / "config.json").write_text(json.dumps({"run_hash": "h"}))
    beat = datetime.now(timezone.utc) + timedelta(seconds=1)  # alive for 1.5 s from now, whatever the load
    heartbeat = beat.replace(tzinfo=None).isoformat()
    (runs / "1" / "run.json").write_text(json.dumps({"status": "RUNNING", "heartbeat": heartbeat}))
    launched = RunWatch(["h"], runs, stale_after_s=0.5)
    assert launched.since == {}  # alive at the start: its outcome counts
    time.sleep(max(0.0, (beat - datetime.now(timezone.utc)).total_seconds()) + 0.6)
    counts = reads_of(monkeypatch, runs)
    assert launched.poll() == {"h": "INTERRUPTED"}
    assert list(counts.values()) == [1]
    assert launched.poll() == {"h": "INTERRUPTED"} and list(counts.values()) == [1]


def test_a_slurm_tasks_lookup_opens_only_its_own_runs_files(store, monkeypatch):
    """An array task plans its one run from the records the store's index lists for its run hash
    (the submitter notes the folders it read of the runs it submits, as in a store made before the
    index): it opens only those folders' files, and decides as a plan over the whole store does."""
    import shutil
    from byol_bench.config import load_config
    from byol_bench.launch.common import watch
    from byol_bench.launch.slurm import note_submitted, task_plan
    from byol_bench.plan.grid import expand_grid
    from byol_bench.store.records import load_runs

    grid, results = store
    runs = results / "runs"
    cfg = load_config(grid)
    whole = {s.config["run_hash"]: s for s in expand_grid(cfg, runs, load_runs(runs))}
    by_hash: dict[str, list[str]] = {}
    for record in load_runs(runs):
        by_hash.setdefault(record.config["run_hash"], []).append(record.run_id)
    # a run done, one interrupted and re-run, one queued with no record
    picks = [next(h for h, s in whole.items() if s.done), next(h for h, s in whole.items() if "interrupted" in s.note),
             next(h for h, s in whole.items() if h not in by_hash)]
    try:
        note_submitted(runs, watch([whole[h] for h in picks], runs, cfg["run"]["stale_after_s"]), picks)
        for run_hash in picks:
            counts = reads_of(monkeypatch, runs)
            (spec,), reader = task_plan(cfg, results, run_hash)
            again = reader.load()  # the runner's check before the run
            monkeypatch.undo()
            assert {str(Path(p).relative_to(runs.resolve())) for p in counts} == \
                {f"{i}/{name}" for i in by_hash.get(run_hash, []) for name in ("config.json", "run.json")}
            assert [r.run_id for r in again] == by_hash.get(run_hash, [])
            assert (spec.done, spec.action, spec.note) == (whole[run_hash].done, whole[run_hash].action,
                                                           whole[run_hash].note)
    finally:
        shutil.rmtree(runs / "_by_hash", ignore_errors=True)  # the module's store stays as built
