"""The one peak-memory sampler (runner per run, bench_step per step): on CPU it sees a
short-lived allocation that is gone again before stop(), and one sampler serves many blocks."""
import time

import numpy as np

from byol_bench.run.cost import peak_memory


def test_a_transient_allocation_shows_in_the_peak_and_the_sampler_is_reused():
    sampler = peak_memory("cpu")
    assert peak_memory("cpu") is sampler
    with sampler as mem:
        before = mem.peak_mb
        block = np.ones(300 * 2**20, dtype=np.uint8)  # 300 MiB, touched
        time.sleep(0.1)                               # a few sampling intervals
        del block
    first = mem.peak_mb
    assert first - before > 250
    with sampler:  # the next block starts from the current resident size, not the old peak
        pass
    assert sampler.peak_mb < first - 250
