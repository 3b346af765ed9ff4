"""Read the run store, results/runs/<id>/{config,run,metrics}.json: the only source of truth."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass
class RunRecord:
    run_id: str
    config: dict
    status: str                   # COMPLETED | FAILED | RUNNING | INTERRUPTED ...
    result: dict[str, float]
    fail_reason: str = ""
    path: Path | None = None

    @property
    def key(self) -> tuple[str, str, int]:
        return self.config.get("dataset", "?"), self.config.get("method", "?"), self.config.get("seed", -1)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def load_runs(runs_dir: Path) -> list[RunRecord]:
    """Every readable run folder, oldest first (Sacred numbers them 1, 2, ...)."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    records = []
    folders = [p for p in runs_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    for folder in sorted(folders, key=lambda p: int(p.name)):
        config, run = _read_json(folder / "config.json"), _read_json(folder / "run.json")
        if config is None or run is None:
            continue
        result = run.get("result") if isinstance(run.get("result"), dict) else {}
        reason = ""
        if run.get("status") == "FAILED":
            trace = run.get("fail_trace") or []
            reason = trace[-1].strip() if trace else "unknown failure"
        records.append(RunRecord(folder.name, config, run.get("status", "?"), result, reason, folder))
    return records


def completed_hashes(runs_dir: Path) -> set[str]:
    return {r.config.get("run_hash") for r in load_runs(runs_dir) if r.status == "COMPLETED"}


def latest_completed(records: list[RunRecord]) -> list[RunRecord]:
    """One record per run hash (the newest completed one), so re-runs never double-count."""
    by_hash: dict[str, RunRecord] = {}
    for r in records:
        if r.status == "COMPLETED":
            by_hash[r.config.get("run_hash", r.run_id)] = r
    return list(by_hash.values())
