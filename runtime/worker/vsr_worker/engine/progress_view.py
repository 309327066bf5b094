"""Shows a running job's progress from the records its stages write.

On a terminal: a tqdm bar (frames upscaled, fps, ETA). Otherwise: a plain log line every
few seconds, so CI logs and redirected output stay readable.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional, TextIO

from tqdm import tqdm


class ProgressView:
    def __init__(
        self, progress_dir: Path, stream: TextIO = sys.stderr, interval: float = 5.0, tty: Optional[bool] = None
    ) -> None:
        self.dir = progress_dir
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.interval = interval
        self._bar: Optional[tqdm] = None
        self._last_line = 0.0
        self._started = time.monotonic()
        self._last_text = ""

    def _records(self) -> list[dict]:
        out = []
        for path in sorted(self.dir.glob("*.json")):
            try:
                out.append(json.loads(path.read_text()))
            except (OSError, ValueError):  # being rewritten; next tick
                continue
        return out

    def snapshot(self) -> dict:
        recs = self._records()
        ups = [r for r in recs if r.get("stage") == "upscale"]
        state = {r["stage"]: r.get("state") for r in recs if r.get("stage") in ("split", "merge")}
        return {
            "split": state.get("split", "pending"),
            "merge": state.get("merge", "pending"),
            "frames_done": sum(r.get("done", 0) for r in ups),
            "frames_total": sum(r.get("total") or 0 for r in ups),
            "children_done": sum(1 for r in ups if r.get("state") == "done"),
            "children_started": len(ups),
        }

    def set_total(self, frames: int) -> None:
        if self.tty and self._bar is None:
            self._bar = tqdm(total=frames, unit="frame", desc="upscale", file=self.stream, dynamic_ncols=True)
        self._total = frames

    def tick(self) -> None:
        snap = self.snapshot()
        done = snap["frames_done"]
        if self._bar is not None:
            self._bar.update(done - self._bar.n)
            return
        now = time.monotonic()
        if now - self._last_line < self.interval:
            return
        total = getattr(self, "_total", None) or snap["frames_total"]
        elapsed = now - self._started
        fps = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / fps if fps > 0 and total else None
        text = (
            f"progress: split {snap['split']}, upscale {done}/{total or '?'} frames "
            f"({fps:.1f} fps, ETA {'?' if eta is None else f'{eta:.0f}s'}), merge {snap['merge']}"
        )
        if text != self._last_text:
            print(text, file=self.stream, flush=True)
            self._last_text = text
        self._last_line = now

    def close(self) -> None:
        if self._bar is not None:
            self.tick()
            self._bar.close()
