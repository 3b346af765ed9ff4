"""Read the run store, results/runs/<id>/{config,run,metrics}.json: the only source of truth."""
from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from dataclasses import dataclass
from pathlib import Path

from byol_bench.store.claims import gone_holder
from byol_bench.store.run_index import indexed_runs


@dataclass
class RunRecord:
    run_id: str
    config: dict
    status: str                   # COMPLETED | FAILED | RUNNING | INTERRUPTED ...
    result: dict[str, float]
    fail_reason: str = ""
    path: Path | None = None
    sacred: dict | None = None    # run.json's SACRED_FIELDS: what the reports read beside the result

    @property
    def key(self) -> tuple[str, str, int]:
        """(dataset label, method, seed): what the leaderboard pairs and groups by."""
        return dataset_label(self.config), self.config.get("method", "?"), self.config.get("seed", -1)


# What the reports read of run.json besides status and result (provenance, heartbeats): kept with
# the record, so that no report reads a run's files a second time.
SACRED_FIELDS = ("experiment", "host", "start_time", "heartbeat")


def dataset_label(config: dict) -> str:
    """The dataset as the leaderboard names it: `stl10`, or `stl10 [garg-jain-code]` for a run
    made under a named recipe (benchmark.recipe), so two recipes never share a table."""
    dataset, recipe = config.get("dataset", "?"), config.get("recipe")
    return f"{dataset} [{recipe}]" if recipe else dataset


def read_json_object(path: Path) -> tuple[dict | None, str]:
    """(the JSON object in `path`, "") or (None, why it is not one). Sacred writes run.json in
    place, so a run killed mid-write leaves it empty or truncated; a hand-edited or foreign file
    may hold valid JSON that is not an object."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None, f"{path.name} is missing"
    except OSError as exc:
        return None, f"{path.name} cannot be read ({exc.strerror or type(exc).__name__})"
    if not text.strip():
        return None, f"{path.name} is empty"
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return None, f"{path.name} is not valid JSON (truncated?)"
    if not isinstance(data, dict):
        return None, f"{path.name} holds a JSON {type(data).__name__}, not an object"
    return data, ""


_reported: set[tuple[str, str]] = set()


def report_unreadable(folder: Path, why: str) -> None:
    """One line on stderr per unreadable run folder and reason, once per process: the store is
    read several times per command (plan, claims, leaderboard), and a folder that stays unreadable
    should be named, not repeated."""
    if (str(folder), why) in _reported:
        return
    _reported.add((str(folder), why))
    print(f"warning: run folder {folder} skipped: {why}", file=sys.stderr)


STALE_AFTER_S = 120.0
"""Default for `run.stale_after_s`: Sacred beats every 10 s, so this is twelve missed beats."""


def last_sign_of_life(run: dict) -> datetime | None:
    """The newest of Sacred's heartbeat and start time (UTC), or None when neither is readable."""
    for key in ("heartbeat", "start_time"):
        try:
            return datetime.fromisoformat(run[key]).replace(tzinfo=timezone.utc)
        except (KeyError, TypeError, ValueError):
            continue
    return None


def effective_status(run: dict, stale_after_s: float, now: datetime | None = None,
                     gone: dict | None = None) -> tuple[str, str]:
    """(status, reason): Sacred's, except that a RUNNING run whose heartbeat is older than
    `stale_after_s` is INTERRUPTED, and so at once is one whose claim's process on this host is
    gone (`gone`, byol_bench.store.claims.gone_holder). Sacred cannot record a SIGKILL or a node
    that died, so its run stays RUNNING forever; it must not count as done, nor as still running."""
    status = run.get("status", "?")
    if status != "RUNNING":
        return status, ""
    seen = last_sign_of_life(run)
    now = now or datetime.now(timezone.utc)
    age = (now - seen).total_seconds() if seen else float("inf")
    if age > stale_after_s:
        return "INTERRUPTED", f"no heartbeat for {age:.0f} s (killed or lost)"
    if gone is not None:
        return "INTERRUPTED", f"its process {gone.get('pid')} on {gone.get('host')} is gone (killed)"
    return status, ""


def run_status(run: dict, run_hash: str, results_dir: Path, stale_after_s: float) -> tuple[str, str]:
    """(status, reason) of a run from its run.json as read now: `effective_status`, with the
    claim of a RUNNING run asked whether its process is gone, and a FAILED run's last trace line."""
    gone = gone_holder(results_dir, run_hash) if run.get("status") == "RUNNING" else None
    status, reason = effective_status(run, stale_after_s, gone=gone)
    status = str(status)
    if status == "FAILED":
        trace = run.get("fail_trace")
        reason = str(trace[-1]).strip() if isinstance(trace, list) and trace else "unknown failure"
    return status, reason


def load_runs(runs_dir: Path, stale_after_s: float = STALE_AFTER_S) -> list[RunRecord]:
    """Every readable run folder, oldest first (Sacred numbers them 1, 2, ...); RUNNING runs
    with a stale heartbeat, or whose claim's process on this host is gone, come back INTERRUPTED.
    Reads each folder's config.json and run.json once, and never its metrics.json."""
    return StoreReader(runs_dir, stale_after_s).load()


class StoreReader:
    """Reads a store's runs again and again (the grid runner asks before every run whether another
    invocation completed it) and reads a run folder's files only when they may have changed since
    the last `load`: Sacred never writes to a run once it recorded it COMPLETED, so those records
    are kept; new folders and every other run (running, failed, interrupted, unreadable) are read
    afresh.

    `run_hashes`: read only the run folders the store's index lists for these run hashes
    (byol_bench.store.run_index), and keep those that hold one of them: a SLURM array task's
    look at its own run, never a pass over the whole store."""

    def __init__(self, runs_dir: Path, stale_after_s: float = STALE_AFTER_S, run_hashes=None):
        self.runs_dir, self.stale_after_s = Path(runs_dir), stale_after_s
        self.run_hashes = None if run_hashes is None else set(run_hashes)
        self._completed: dict[str, RunRecord] = {}

    def load(self) -> list[RunRecord]:
        """Every readable run folder now (of `run_hashes` when given), oldest first (see `load_runs`)."""
        if not self.runs_dir.is_dir():
            return []
        records = []
        for folder in self._folders():
            record = self._completed.get(folder.name) or self._read(folder)
            if record is not None and (self.run_hashes is None or record.config.get("run_hash") in self.run_hashes):
                records.append(record)
        return records

    def _folders(self) -> list[Path]:
        if self.run_hashes is None:
            folders = [p for p in self.runs_dir.iterdir() if p.name.isdigit() and p.is_dir()]
        else:  # a noted folder since removed is no run
            names = {name for h in self.run_hashes for name in indexed_runs(self.runs_dir, h)}
            folders = [p for p in map(self.runs_dir.joinpath, names) if p.is_dir()]
        return sorted(folders, key=lambda p: int(p.name))

    def _read(self, folder: Path) -> RunRecord | None:
        (config, config_why), (run, run_why) = (read_json_object(folder / "config.json"),
                                                read_json_object(folder / "run.json"))
        if config is None or run is None:
            report_unreadable(folder, config_why or run_why)
            return None
        result = run.get("result") if isinstance(run.get("result"), dict) else {}
        status, reason = run_status(run, str(config.get("run_hash", "")), self.runs_dir.parent, self.stale_after_s)
        record = RunRecord(folder.name, config, status, result, reason, folder,
                           {k: run[k] for k in SACRED_FIELDS if k in run})
        if run.get("status") == "COMPLETED":
            self._completed[folder.name] = record
        return record


def latest_completed(records: list[RunRecord]) -> list[RunRecord]:
    """One record per run hash (the newest completed one), so re-runs never double-count."""
    by_hash: dict[str, RunRecord] = {}
    for r in records:
        if r.status == "COMPLETED":
            by_hash[r.config.get("run_hash", r.run_id)] = r
    return list(by_hash.values())


def one_per_key(records: list[RunRecord]) -> tuple[list[RunRecord], list[tuple[RunRecord, RunRecord]]]:
    """Completed records with one per (dataset label, method, seed): the newest (highest run
    id) wins. Returns (kept, superseded) where superseded pairs each dropped record with the one
    kept in its place: runs of other configs under the same key, which the leaderboard lists
    instead of silently averaging or overwriting."""
    newest: dict[tuple, RunRecord] = {}
    for r in sorted(records, key=lambda r: int(r.run_id) if r.run_id.isdigit() else -1):
        newest[r.key] = r
    kept = [r for r in records if newest[r.key] is r]
    superseded = [(r, newest[r.key]) for r in records if newest[r.key] is not r]
    return kept, superseded


def config_differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two configs (identities and descriptions left out)."""
    out = []
    for key in sorted(set(a) | set(b)):
        if not prefix and key in ("run_hash", "pretrain_hash", "describe", "fingerprints"):
            continue
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_differences(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key}")
    return out
