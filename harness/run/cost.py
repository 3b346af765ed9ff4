"""Peak memory of a stretch of work: CUDA's max allocated, or on CPU the peak resident set size
sampled by a daemon thread (the process-wide ru_maxrss never goes down across runs, so it
cannot measure one run or one step). One sampler serves the runner (per run) and
benchmarks.step (per step): the thread sleeps between start() and the next start()."""
from __future__ import annotations

import threading

import torch


class PeakMemory:
    """`start()` ... `stop()` -> peak MB in between; also a context manager (`.peak_mb` after)."""

    def __init__(self, device: torch.device | str = "cpu", interval_s: float = 0.01):
        self.device, self.interval_s, self.peak_mb = torch.device(device), interval_s, 0.0
        self._active, self._pause = threading.Event(), threading.Event()  # _pause is never set
        if self.device.type != "cuda":
            import psutil
            self._proc = psutil.Process()
            threading.Thread(target=self._sample, daemon=True).start()

    def _rss_mb(self) -> float:
        return self._proc.memory_info().rss / 2**20

    def _sample(self) -> None:
        while True:
            self._active.wait()
            self.peak_mb = max(self.peak_mb, self._rss_mb())
            self._pause.wait(self.interval_s)

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.peak_mb = self._rss_mb()
            self._active.set()

    def stop(self) -> float:
        if self.device.type == "cuda":
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self._active.clear()
            self.peak_mb = max(self.peak_mb, self._rss_mb())
        return self.peak_mb

    def __enter__(self) -> "PeakMemory":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


_SAMPLERS: dict[str, PeakMemory] = {}


def peak_memory(device: torch.device | str) -> PeakMemory:
    """This process's one sampler for `device` (one sleeping thread, however many runs)."""
    key = str(torch.device(device))
    if key not in _SAMPLERS:
        _SAMPLERS[key] = PeakMemory(device)
    return _SAMPLERS[key]
