"""A deadline for tests that wait on other processes: a hang fails the test, it never blocks."""
from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Callable


@contextmanager
def deadline(seconds: int, on_failure: Callable[[], None] | None = None):
    """TimeoutError if the block runs past `seconds` (SIGALRM: main thread only). `on_failure`
    runs when the block raises anything, the timeout included (e.g. cancel the test's jobs)."""
    def expired(signum, frame):
        raise TimeoutError(f"not done within {seconds} s")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    except BaseException:
        if on_failure is not None:
            on_failure()
        raise
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
