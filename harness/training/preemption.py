"""SIGTERM / SIGUSR2 (SLURM's and submitit's warning signals): checkpoint at the next step, stop.

The handler only sets a flag; the training loop reads it at each step boundary (agreed over
processes, byol_bench.training.agreement), writes a checkpoint, and raises `Preempted`. Preempted is a
KeyboardInterrupt, which Sacred records as INTERRUPTED; the CLI then exits with 128 + the
signal number, as a process killed by it would, and the same command resumes the run.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

SIGNALS = (signal.SIGTERM, signal.SIGUSR2)
_received: list[int] = []


class Preempted(KeyboardInterrupt):
    """The run checkpointed and stopped on a preemption signal."""

    def __init__(self, signum: int, checkpoint: str = ""):
        super().__init__(f"stopped by {signal.Signals(signum).name}; checkpoint {checkpoint or '(none)'}")
        self.signum = signum


class ClaimLost(KeyboardInterrupt):
    """Another invocation took this run's claim over (it looked dead to it: stopped or cut off
    from the store) and runs it now: this one stops at its next check without a checkpoint or
    a saved encoder, recorded INTERRUPTED (a KeyboardInterrupt, as Sacred records it), and the
    grid goes on with its next run."""

    def __init__(self):
        super().__init__("this run's claim was taken over by another invocation, which runs it now")


def _handle(signum, frame):
    _received.append(signum)


@contextmanager
def handled() -> Iterator[None]:
    """Within the block, the preemption signals set the flag (main thread only, as Python
    requires); the previous handlers come back after it, and the flag starts clear."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    previous = {sig: signal.signal(sig, _handle) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def requested() -> int | None:
    """The first preemption signal received, or None."""
    return _received[0] if _received else None
