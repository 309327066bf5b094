"""Where a stage's time goes: seconds per phase, and how busy each pipeline thread was.

Every stage fills one :class:`Timings` and stores it with its result (the split index, the
segment record, ``result.json``) and its final progress record; ``vsr-worker run --task
debug`` prints them. Phases are wall-clock seconds spent inside a step by the thread doing
it; threads of one pipeline overlap, so phases may sum to more than the stage took. A
thread's busy fraction is its working time over the pipeline's wall time (for a pool of
several threads doing one job, their mean): a thread near 1.0 is the bottleneck, the others
wait for it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Dict, Iterable, Iterator, Optional, TypeVar

T = TypeVar("T")


def process_age() -> Optional[float]:
    """Seconds since this process was started (Linux ``/proc``; None elsewhere).

    Measured when a stage begins, it is the process start-up the stage paid: interpreter,
    imports and reading the manifest.
    """
    try:
        with open("/proc/self/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime, in ticks since boot
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started)
    except (OSError, ValueError, IndexError, AttributeError):
        return None


class Timings:
    """Seconds per phase and busy seconds per thread, safe to fill from several threads."""

    def __init__(self) -> None:
        self.seconds: Dict[str, float] = {}
        self.busy: Dict[str, float] = {}
        self.pool_sizes: Dict[str, int] = {}  # threads sharing one busy name
        self._lock = threading.Lock()
        self.pipeline_seconds = 0.0

    def add(self, phase: str, seconds: float, thread: Optional[str] = None) -> None:
        with self._lock:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds
            if thread is not None:
                self.busy[thread] = self.busy.get(thread, 0.0) + seconds

    @contextlib.contextmanager
    def phase(self, name: str, thread: Optional[str] = None) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started, thread)

    def timed(self, items: Iterable[T], phase: str, thread: Optional[str] = None) -> Iterator[T]:
        """Yield ``items``, counting the time spent producing each one as ``phase``."""
        it = iter(items)
        while True:
            started = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                self.add(phase, time.perf_counter() - started, thread)
                return
            self.add(phase, time.perf_counter() - started, thread)
            yield item

    @contextlib.contextmanager
    def pipeline(self) -> Iterator[None]:
        """The span the pipeline threads run in: the denominator of their busy fractions."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.pipeline_seconds += time.perf_counter() - started

    def to_json(self) -> dict:
        with self._lock:
            out: dict = {"seconds": {k: round(v, 4) for k, v in sorted(self.seconds.items())}}
            if self.busy and self.pipeline_seconds > 0:
                out["pipeline_seconds"] = round(self.pipeline_seconds, 4)
                out["busy_fraction"] = {
                    k: round(min(1.0, v / (self.pipeline_seconds * self.pool_sizes.get(k, 1))), 3)
                    for k, v in sorted(self.busy.items())
                }
                if self.pool_sizes:
                    out["threads"] = dict(sorted(self.pool_sizes.items()))
            return out
