"""The outcomes of launched runs, looked at again and again while they run (the local and SLURM
launchers print a line whenever one changes), reading only what may have changed since the last
look: never the whole store per look.

The store is read whole once, when the watch starts: that fixes `since` (run hash -> the newest
of its records that had ended then). Each look after that lists the runs folder (names only),
reads config.json of a folder new since the last look (Sacred writes it once, when it creates the
folder), and run.json only of the runs watched (a watched hash, a folder after `since`), and
of those only when the file changed (inode, size or mtime) since it was last read. Time alone
changes one thing: a RUNNING run whose heartbeat grows old is INTERRUPTED; one that looks so
from what was last read is read again before it is judged (a file system that caches attributes,
NFS, may show a newer heartbeat late), and a RUNNING run's claim is asked at every look whether
its process is gone, as `load_runs` does. The closing look (`fresh`) reads every watched run
afresh.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from byol_bench.store.records import effective_status, read_json_object, report_unreadable, run_status

Stat = tuple  # (inode, size, mtime_ns), or None when the file cannot be stat'ed


def _stat(path: Path) -> Stat | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


@dataclass
class _Read:
    stat: Stat | None     # run.json as it was when read
    run: dict | None      # what it held (None: unreadable)
    stale: bool = False   # RUNNING, with a heartbeat already too old when read


class RunWatch:
    """`poll()`: run hash -> status of its newest readable record after `since[run_hash]` (None: no
    such record), for the run hashes watched: COMPLETED, FAILED, INTERRUPTED or RUNNING."""

    def __init__(self, run_hashes, runs_dir: Path, stale_after_s: float):
        self.wanted = set(run_hashes)
        self.runs_dir, self.stale_after_s = Path(runs_dir), stale_after_s
        self._hash: dict[str, object] = {}       # folder -> run hash in its config.json
        self._unreadable: dict[str, Stat | None] = {}  # folder -> its config.json's stat when it could not be read
        self._runs: dict[str, _Read] = {}         # watched folder -> its run.json as last read
        self.since: dict[str, int] = {}
        for name, run_hash, status in self._look(fresh=True):  # the whole store, once
            if status != "RUNNING":
                self.since[run_hash] = max(self.since.get(run_hash, 0), int(name))
        self._runs = {n: r for n, r in self._runs.items() if int(n) > self.since.get(self._hash[n], 0)}

    def poll(self, fresh: bool = False) -> dict[str, str | None]:
        """The watched runs' state now; `fresh`: read every watched run.json (the closing look)."""
        out: dict[str, str | None] = dict.fromkeys(self.wanted)
        for _, run_hash, status in self._look(fresh):  # oldest first: the newest wins
            out[run_hash] = status
        return out

    def folders(self) -> dict[str, list[str]]:
        """Watched run hash -> every run folder seen to hold it, oldest first."""
        out: dict[str, list[str]] = {}
        for name in sorted(self._hash, key=int):
            if self._hash[name] in self.wanted:
                out.setdefault(self._hash[name], []).append(name)
        return out

    def _look(self, fresh: bool):
        """(folder, run hash, status) of every readable watched record now, oldest first."""
        try:
            names = [n for n in os.listdir(self.runs_dir) if n.isdigit()]
        except (FileNotFoundError, NotADirectoryError):
            return
        for name in sorted(names, key=int):
            run_hash = self._hash_of(name, fresh)
            if run_hash in self.wanted and int(name) > self.since.get(run_hash, 0):
                status = self._status(name, run_hash, fresh)
                if status is not None:
                    yield name, run_hash, status

    def _hash_of(self, name: str, fresh: bool):
        """The run hash of folder `name`, its config.json read once (again only once it changed,
        while unreadable); None for a folder that is no run (yet)."""
        if name in self._hash:
            return self._hash[name]
        folder = self.runs_dir / name
        stat = _stat(folder / "config.json")
        if not fresh and name in self._unreadable and self._unreadable[name] == stat:
            return None
        if name not in self._unreadable and not folder.is_dir():
            return None
        config, why = read_json_object(folder / "config.json")
        if config is None:
            report_unreadable(folder, why)
            self._unreadable[name] = stat
            return None
        self._unreadable.pop(name, None)
        self._hash[name] = config.get("run_hash")
        return self._hash[name]

    def _status(self, name: str, run_hash: str, fresh: bool) -> str | None:
        path = self.runs_dir / name / "run.json"
        stat, seen = _stat(path), self._runs.get(name)
        if fresh or seen is None or seen.stat != stat or (seen.run is not None and not seen.stale and
                                                          self._looks_stale(seen.run)):
            run, why = read_json_object(path)
            if run is None:
                report_unreadable(path.parent, why)
            seen = self._runs[name] = _Read(stat, run, run is not None and self._looks_stale(run))
        if seen.run is None:
            return None
        return run_status(seen.run, str(run_hash), self.runs_dir.parent, self.stale_after_s)[0]

    def _looks_stale(self, run: dict) -> bool:
        return run.get("status") == "RUNNING" and effective_status(run, self.stale_after_s)[0] != "RUNNING"
