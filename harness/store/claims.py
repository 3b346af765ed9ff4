"""Run claims: one invocation runs a configuration, however many are started on one store.

    <results>/claims/<run_hash>.json     {"host", "pid", "job", "token", "beat", "heartbeat"}

Taking. A claim is written to a temporary file and hard-linked into place
(atomic_io.create_text): it appears whole or not at all, and the link fails when the name
exists, on NFS too. Its `token` is random: the claim belongs to the invocation that drew it,
and only that one refreshes or removes it.

Holding. A heartbeat thread rewrites the claim every `run.heartbeat_s` seconds (the beat count
changes each time; a temporary file and a rename), after reading it back: a claim that no
longer holds its token was taken over, and the holder marks itself `lost` and never writes it
again. A failed write (a full disk, an NFS hiccup) is retried after a short pause; the thread
never dies. The run's checks (harness/training/agreement.py) stop a run whose claim is lost at
the next check, recorded INTERRUPTED, never COMPLETED.

Judging. Clocks of two hosts are never compared: a reader judges a claim by watching it. A
claim whose content (its bytes; for an unreadable one its inode, size and mtime) this process
has seen unchanged for `stale_after_s` of its own monotonic clock belongs to a dead or stopped
holder; so, at once, does a claim of this host whose process is gone (a SIGKILL leaves a
fresh-looking claim). `run.stale_after_s` spans at least 3 heartbeats (harness/config.py), so
one late or failed beat is no death. One look cannot tell a dead holder from a live one between
two beats: `try_claim` looks once, `watch_claim` goes on looking until the holder shows a sign
of life or its claim is found dead. A dead claim is renamed aside by whoever gets there first
(rename is atomic: one taker wins, the others get ENOENT), who checks that it is still the
claim it judged before creating its own.

Releasing. When the run ends (completed, failed or interrupted: the next command may then
resume it) the holder renames its claim aside and deletes it if it holds its token (a claim
taken over meanwhile is put back); a lost claim is left alone.
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
import uuid
from contextlib import suppress
from pathlib import Path

from tqdm.auto import tqdm

from byol_bench.config import CLAIM_HEARTBEAT_S
from byol_bench.store.atomic_io import atomic_write_text, create_text

CLAIMS = "claims"
RETRY_S = 1.0  # pause before a failed heartbeat write is tried again (at most one beat)

# What this process saw of each claim: path -> (content, since when unchanged (monotonic),
# whether it changed while watched: a sign of life).
_seen: dict[Path, tuple[object, float, bool]] = {}


def claim_path(results_dir: Path, name: str) -> Path:
    return Path(results_dir) / CLAIMS / f"{name}.json"


def _record(token: str, beat: int) -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "job": os.environ.get("SLURM_JOB_ID", ""),
            "token": token, "beat": beat, "heartbeat": time.time()}  # heartbeat: for people, never compared


def _content(path: Path):
    """The claim's bytes; for one this process may not read, its (inode, size, mtime), which
    every heartbeat changes too; None when there is none."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        return None
    except OSError:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            return ("unreadable", exc.errno)
        return (st.st_ino, st.st_size, st.st_mtime_ns)


def _parse(content) -> dict:
    try:
        held = json.loads(content) if isinstance(content, bytes) else {}
    except ValueError:
        return {}
    return held if isinstance(held, dict) else {}


def read_claim(path: Path) -> dict | None:
    """The claim's fields, or None when there is none or it cannot be read."""
    content = _content(path)
    return _parse(content) if isinstance(content, bytes) else None


def _process_gone(held: dict) -> bool:
    """The claim is this host's and its process no longer exists."""
    if held.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(held["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, KeyError, ValueError, TypeError, OverflowError):
        return False
    return False


def _look(path: Path, stale_after_s: float) -> tuple[str, object]:
    """(state, content) after one look: "free" (no claim), "dead" (its process is gone, or it
    was seen unchanged for `stale_after_s`), "alive" (seen changing, not yet unchanged that
    long), or "unknown" (not seen changing yet)."""
    content, now = _content(path), time.monotonic()
    if content is None:
        _seen.pop(path, None)
        return "free", None
    if _process_gone(_parse(content)):
        return "dead", content
    last = _seen.get(path)
    if last is None or last[0] != content:
        _seen[path] = (content, now, last is not None)
        return ("alive" if last is not None else "unknown"), content
    if now - last[1] >= stale_after_s:
        return "dead", content
    return ("alive" if last[2] else "unknown"), content


class Claim:
    """A held claim. `lost()` says whether another invocation took it over; `release()` (or the
    context manager's exit) stops the heartbeat and removes the claim if it is still this one."""

    def __init__(self, path: Path, token: str, heartbeat_s: float = CLAIM_HEARTBEAT_S):
        self.path, self.token, self.heartbeat_s = path, token, heartbeat_s
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"claim {path.name}")
        self._thread.start()

    def _owned(self) -> bool:
        """Whether the claim file holds this claim's token (an OSError other than a missing
        file means: cannot tell now, and is raised)."""
        try:
            content = self.path.read_bytes()
        except FileNotFoundError:
            return False
        return _parse(content).get("token") == self.token

    def _beat(self) -> None:
        beat, pause, told = 0, self.heartbeat_s, False
        while not self._stop.wait(pause):
            try:
                if not self._owned():
                    self._lost.set()
                    return  # another's now: never written again
                beat += 1
                atomic_write_text(self.path, json.dumps(_record(self.token, beat)))
                pause, told = self.heartbeat_s, False
            except Exception as exc:  # never die: a claim that stops changing is taken over
                if not told:
                    tqdm.write(f"claim {self.path}: heartbeat not written ({type(exc).__name__}: {exc}); retrying")
                    told = True
                pause = min(self.heartbeat_s, RETRY_S)

    def lost(self, confirm: bool = False) -> bool:
        """Whether the claim was taken over: as the last heartbeat found, or with `confirm`, as
        the claim file says now (unreadable now: as the last heartbeat found)."""
        if confirm and not self._lost.is_set():
            with suppress(OSError):
                if not self._owned():
                    self._lost.set()
        return self._lost.is_set()

    def release(self) -> None:
        self._stop.set()
        self._thread.join()
        if self._lost.is_set():
            return
        aside = self.path.with_name(f".{self.path.name}.release-{uuid.uuid4().hex}")
        try:  # renamed first, so that what is checked is what is removed
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        if _parse(_content(aside)).get("token") != self.token:  # taken over meanwhile: put it back
            with suppress(FileExistsError):
                os.link(aside, self.path)
        aside.unlink(missing_ok=True)

    def __enter__(self) -> "Claim":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _attempt(results_dir: Path, name: str, stale_after_s: float, heartbeat_s: float) -> tuple[Claim | None, str]:
    """(the claim, "taken") or (None, the holder's state as `_look` found it)."""
    path = claim_path(results_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = "free"
    for _ in range(2):  # the second pass follows a dead claim's removal
        token = secrets.token_hex(16)
        if create_text(path, json.dumps(_record(token, 0))):
            _seen.pop(path, None)
            return Claim(path, token, heartbeat_s), "taken"
        state, judged = _look(path, stale_after_s)
        if state == "free":
            continue  # released between the create and the look
        if state != "dead":
            return None, state
        aside = path.with_name(f".{path.name}.stale-{uuid.uuid4().hex}")
        try:  # only one taker's rename succeeds
            os.rename(path, aside)
        except FileNotFoundError:
            continue
        if _content(aside) != judged:  # refreshed, or another taker's new claim: put it back
            with suppress(FileExistsError):
                os.link(aside, path)
            aside.unlink(missing_ok=True)
            return None, "alive"
        aside.unlink(missing_ok=True)
        _seen.pop(path, None)
    return None, state


def try_claim(results_dir: Path, name: str, stale_after_s: float,
              heartbeat_s: float = CLAIM_HEARTBEAT_S) -> Claim | None:
    """The claim `name` (a run hash), or None while its holder may be alive. One look: a claim
    seen for the first time is never dead, unless its process on this host is gone."""
    return _attempt(results_dir, name, stale_after_s, heartbeat_s)[0]


def watch_claim(results_dir: Path, name: str, stale_after_s: float, heartbeat_s: float = CLAIM_HEARTBEAT_S,
                give_up=lambda: False) -> Claim | None:
    """Look at the claim `name` until its holder shows a sign of life (None: left to it), or the
    claim is free or dead (taken: the Claim), or `give_up()` (None). A live holder shows one
    within a heartbeat; a dead one costs `stale_after_s` since this process first saw it."""
    while True:
        claim, state = _attempt(results_dir, name, stale_after_s, heartbeat_s)
        if claim is not None or state == "alive" or give_up():
            return claim
        time.sleep(min(heartbeat_s / 4, 1.0))


def holder_state(results_dir: Path, name: str, stale_after_s: float) -> str:
    """One look at the claim `name`: "free", "dead", "alive" or "unknown" (not seen changing
    yet: look again within a heartbeat)."""
    return _look(claim_path(results_dir, name), stale_after_s)[0]


def gone_holder(results_dir: Path, name: str) -> dict | None:
    """The claim `name` when it is held by a process of this host that no longer exists (killed:
    nothing removed its claim), else None."""
    held = _parse(_content(claim_path(results_dir, name)))
    return held if held and _process_gone(held) else None
