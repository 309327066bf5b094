"""Progress and heartbeat records that stages write while they work.

Each record is one small JSON document per (stage, array index), rewritten at most once a
second; the local engine draws its progress bar from them and the API reports them.
"""

from __future__ import annotations

import time
from typing import Optional

from vsr_worker import layout, storage


class ProgressWriter:
    def __init__(self, work: str, stage: str, index: int = 0, total: Optional[int] = None, interval: float = 1.0):
        self.uri = layout.progress(work, stage, index)
        self.stage, self.index, self.total = stage, index, total
        self.done = 0
        self.interval = interval
        self.started = time.monotonic()
        self._last_write = 0.0
        self.write("running")

    def advance(self, n: int = 1) -> None:
        self.done += n
        if time.monotonic() - self._last_write >= self.interval:
            self.write("running")

    def write(self, state: str, **extra: object) -> None:
        now = time.monotonic()
        elapsed = max(now - self.started, 1e-9)
        record = {
            "stage": self.stage,
            "index": self.index,
            "state": state,
            "done": self.done,
            "total": self.total,
            "rate": round(self.done / elapsed, 3),
            "elapsed": round(elapsed, 3),
            "updated": time.time(),
            **extra,
        }
        storage.write_json(self.uri, record)
        self._last_write = now

    def finish(self, **extra: object) -> None:
        self.write("done", **extra)


def record_failure(work: str, stage: str, index: int, code: str, message: str) -> None:
    """Replace the stage's record with its one-line error: the API reports it as the job's
    failure reason (Batch itself only says "Essential container in task exited")."""
    record = {
        "stage": stage,
        "index": index,
        "state": "failed",
        "error": {"code": code, "message": storage.without_scratch_paths(message)},
        "updated": time.time(),
    }
    storage.write_json(layout.progress(work, stage, index), record)
