"""Run claims: one invocation runs a configuration, however many are started on one store.

    <results>/claims/<run_hash>.json     {"host", "pid", "job", "heartbeat"}

A claim is taken by an atomic exclusive create (O_CREAT | O_EXCL, which NFS honours; no
flock), refreshed by a heartbeat thread that rewrites it through a temporary file and a rename,
and removed when the run ends (completed, failed or interrupted: the next command may then
resume it). A claim whose heartbeat is older than `stale_after_s`, or one of this host whose
process is gone, belongs to a dead process:
whoever renames it away first (rename is atomic: one taker wins, the others get ENOENT) takes
the run over.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from harness.store.atomic_io import atomic_write_text

CLAIMS = "claims"
BEAT_S = 10.0


def _owner() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(),
            "job": os.environ.get("SLURM_JOB_ID", ""), "heartbeat": time.time()}


def read_claim(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


class Claim:
    """A held claim; `release()` (or the context manager's exit) stops the heartbeat and removes it."""

    def __init__(self, path: Path):
        self.path = path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(BEAT_S):
            atomic_write_text(self.path, json.dumps(_owner()))

    def release(self) -> None:
        self._stop.set()
        self._thread.join()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> "Claim":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def is_dead(held: dict, stale_after_s: float) -> bool:
    """A claim's holder is gone: its heartbeat is stale, or it was this host's and its process
    no longer exists (a SIGKILL leaves a fresh-looking claim behind)."""
    age = time.time() - held["heartbeat"] if "heartbeat" in held else float("inf")
    if age > stale_after_s:
        return True
    if held.get("host") == socket.gethostname():
        try:
            os.kill(int(held["pid"]), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, KeyError, ValueError, TypeError):
            return False
    return False


def try_claim(results_dir: Path, run_hash: str, stale_after_s: float) -> Claim | None:
    """The claim on `run_hash`, or None when a live process holds it."""
    folder = Path(results_dir) / CLAIMS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run_hash}.json"
    for _ in range(2):  # the second pass follows a stale claim's takeover
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            held = read_claim(path)
            if held is not None and not is_dead(held, stale_after_s):
                return None
            aside = path.with_name(f".{path.name}.stale-{uuid.uuid4().hex}")
            try:  # stale (or unreadable): move it aside; only one taker's rename succeeds
                os.replace(path, aside)
            except FileNotFoundError:
                continue
            if read_claim(aside) != held:  # another taker's fresh claim, renamed under our feet
                os.replace(aside, path)
                return None
            continue
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(_owner()))
        return Claim(path)
    return None
