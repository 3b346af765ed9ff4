"""SIGTERM / SIGUSR2 (SLURM's and submitit's warning signals): checkpoint at the next step, stop.

The handler only sets a flag; the training loop reads it at each step boundary (agreed over
processes, harness.agreement), writes a checkpoint, and raises `Preempted`. Preempted is a
KeyboardInterrupt, which Sacred records as INTERRUPTED; the CLI then exits with 128 + the
signal number, as a process killed by it would, and the same command resumes the run.
"""
from __future__ import annotations

import signal
import threading

SIGNALS = (signal.SIGTERM, signal.SIGUSR2)
_received: list[int] = []


class Preempted(KeyboardInterrupt):
    """The run checkpointed and stopped on a preemption signal."""

    def __init__(self, signum: int, checkpoint: str = ""):
        super().__init__(f"stopped by {signal.Signals(signum).name}; checkpoint {checkpoint or '(none)'}")
        self.signum = signum


def _handle(signum, frame):
    _received.append(signum)


def install() -> None:
    """Route the preemption signals to the flag (main thread only, as Python requires)."""
    if threading.current_thread() is threading.main_thread():
        for sig in SIGNALS:
            signal.signal(sig, _handle)


def requested() -> int | None:
    """The first preemption signal received, or None."""
    return _received[0] if _received else None


def clear() -> None:
    _received.clear()
