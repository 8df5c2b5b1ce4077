"""Measured cost: wall time and peak memory *within* a run.

``resource.getrusage`` gives the peak RSS of the whole process, which includes whatever ran
before (a test suite, an earlier erasure). :class:`PeakMemory` instead samples the resident set
size from ``/proc/self/statm`` in a background thread while the block runs, and reads CUDA's own
peak counter after resetting it.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
import time

import torch


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux: fall back to the process-lifetime peak
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


class PeakMemory:
    """Context manager recording peak RSS (MB) and peak CUDA memory (MB) while it is open."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak_rss_mb = 0.0
        self.peak_gpu_mb = 0.0
        self._stop = threading.Event()

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak_rss_mb = max(self.peak_rss_mb, _rss_mb())
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self.peak_rss_mb = _rss_mb()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_rss_mb = max(self.peak_rss_mb, _rss_mb())
        if torch.cuda.is_available():
            self.peak_gpu_mb = torch.cuda.max_memory_allocated() / 2**20


class Stopwatch:
    """Accumulates seconds over several ``with`` blocks (e.g. data generation vs training)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __enter__(self) -> "Stopwatch":
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds += time.perf_counter() - self._start
