"""Which run folders hold a run hash, without opening every run of the store:

    <results>/runs/_by_hash/<run_hash>/<run_id>     an empty file per run folder of that hash

A lookup aid beside Sacred's folders (its `_sources` sits there too; every reader of the store
takes only the digit-named folders), never the truth: a reader of an indexed folder still reads
its config.json and keeps it only when its run hash is the one asked for. The runner notes each
run as it starts (byol_bench.run.sacred_adapter); folders made before the index existed are
noted by whoever read them whole and needs them found (the SLURM submitter, for the runs it
submits: its array task looks its run up here instead of reading the whole store).
"""
from __future__ import annotations

from pathlib import Path

BY_HASH = "_by_hash"


def note_run(runs_dir: Path, run_hash: str, run_id: str) -> None:
    """Record that run folder `run_id` holds `run_hash` (idempotent; safe from many hosts)."""
    folder = Path(runs_dir) / BY_HASH / run_hash
    folder.mkdir(parents=True, exist_ok=True)
    (folder / str(run_id)).touch()


def indexed_runs(runs_dir: Path, run_hash: str) -> list[str]:
    """The run folders noted for `run_hash`, oldest first (one folder listing, no file opened)."""
    try:
        names = [p.name for p in (Path(runs_dir) / BY_HASH / run_hash).iterdir() if p.name.isdigit()]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(names, key=int)
