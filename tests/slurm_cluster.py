"""The one-node SLURM of scripts/slurm-local.sh, for tests (issue 10).

`find_cluster()` answers whether `sinfo` sees a usable node; if not, and this process is root and
the SLURM daemons are installed, it runs `scripts/slurm-local.sh up` once, and the fixture stops
that cluster again at the end of the session (a cluster that was already up stays up: run `up`
once yourself to save the ~15 s start per pytest run). It never installs packages from inside
pytest: CI (and a developer) runs `scripts/slurm-local.sh up` for that.
Where no cluster can be had, the `slurm_cluster` fixture (tests/conftest.py) skips with ONE reason.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "slurm-local.sh"
PARTITION = "debug"
READY_STATES = {"idle", "mixed", "allocated", "completing"}


@dataclass(frozen=True)
class SlurmCluster:
    partition: str
    node_state: str
    accounting: bool   # `sacct` answers: submitit can read job states (without it: UNKNOWN forever)
    started_here: bool  # find_cluster ran `scripts/slurm-local.sh up`; stop_cluster() undoes it


def _run(cmd: list[str], timeout: float) -> tuple[int, str]:
    """rc and combined output. Output goes through a file, not a pipe: a daemon started by the
    command that kept the pipe open would otherwise block us until our timeout."""
    with tempfile.TemporaryFile("w+") as out:
        try:
            rc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                timeout=timeout).returncode
        except (OSError, subprocess.TimeoutExpired) as e:
            return 124, f"{' '.join(cmd)}: {e}"
        out.seek(0)
        return rc, out.read()


def _node_state() -> tuple[str | None, str]:
    """(state of the partition's node, or None) and what sinfo said when it did not answer."""
    if shutil.which("sinfo") is None:
        return None, "sinfo not found (slurm-client not installed)"
    rc, out = _run(["sinfo", "-h", "-N", "-p", PARTITION, "-o", "%T"], timeout=15)
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    if rc != 0 or not lines:
        return None, lines[-1] if lines else f"sinfo found no node in partition {PARTITION!r}"
    state = lines[0].rstrip("*~#!%$@^-")
    return (state if state in READY_STATES else None), f"node state {lines[0]!r}"


def _first_error(out: str) -> str:
    """The script's own message (it prefixes its errors with 'slurm-local:'), else the first line."""
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    own = [line for line in lines if line.startswith("slurm-local:")]
    return (own[-1] if own else lines[0] if lines else "no output").removeprefix("slurm-local: ")


def find_cluster() -> SlurmCluster | str:
    """A usable cluster, or the one-line reason there is none."""
    state, why = _node_state()
    started = False
    if state is None:
        if os.geteuid() != 0:
            return f"no one-node SLURM: {why}; `scripts/slurm-local.sh up` needs root"
        if shutil.which("slurmctld") is None:
            return f"no one-node SLURM: {why}; slurm-wlm is not installed (run `scripts/slurm-local.sh up`)"
        rc, out = _run(["bash", str(SCRIPT), "up"], timeout=180)
        started = True
        if rc != 0:
            _run(["bash", str(SCRIPT), "down"], timeout=120)
            return f"no one-node SLURM: scripts/slurm-local.sh up failed: {_first_error(out)}"
        state, why = _node_state()
        if state is None:
            return f"no one-node SLURM: scripts/slurm-local.sh up succeeded but sinfo says: {why}"
    rc, _ = _run(["sacct", "-n", "-X", "-j", "1"], timeout=15) if shutil.which("sacct") else (1, "")
    return SlurmCluster(partition=PARTITION, node_state=state, accounting=rc == 0, started_here=started)


def stop_cluster(cluster: SlurmCluster) -> None:
    """Stop the cluster if find_cluster started it (one that was already up stays up)."""
    if cluster.started_here:
        _run(["bash", str(SCRIPT), "down"], timeout=120)
