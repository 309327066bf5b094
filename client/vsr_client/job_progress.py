"""How ``vsr`` shows a job while it runs: a tqdm bar on a terminal, plain lines otherwise.

The bar counts upscaled frames (with the segments done and the stage states beside it) and
tqdm's ETA; the plain lines, for logs and pipes, carry the same facts and an ETA from the
frame rate seen so far, and are printed only when something changed.
"""

from __future__ import annotations

import sys
import time
from typing import NoReturn, TextIO

from tqdm import tqdm

from vsr_client.api_models import JobStatus

BAR_FORMAT = "{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} frames{postfix} [{elapsed}, ETA {remaining}]"


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def format_progress(status: JobStatus, eta: float | None = None) -> str:
    """One line: the job's state word, then each stage's (upscale with segments and frames)."""
    p = status.progress
    up = p.upscale
    frames = f", {up.frames_done or 0}/{up.frames_total} frames" if up.frames_total else ""
    eta_text = f", ETA {format_eta(eta)}" if eta is not None and not status.done else ""
    return (
        f"{status.job_id}: {status.state} | split {p.split.state} | "
        f"upscale {up.done}/{up.total} segments{frames}{eta_text} | merge {p.merge.state}"
    )


class FrameRate:
    """Seconds left, from the frames upscaled since the first progress seen."""

    def __init__(self) -> None:
        self._start: tuple[float, int] | None = None

    def eta(self, done: int | None, total: int | None, now: float | None = None) -> float | None:
        now = time.monotonic() if now is None else now
        if done is None or not total:
            return None
        if self._start is None:
            self._start = (now, done)
            return None
        t0, d0 = self._start
        if done <= d0 or now <= t0:
            return None
        return (total - done) * (now - t0) / (done - d0)


class JobProgressDisplay:
    """``update(status)`` on every poll; ``close()`` at the end."""

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None, quiet: bool = False) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.quiet = quiet
        self._bar: tqdm[NoReturn] | None = None  # a bar fed by update(), not an iterable
        self._rate = FrameRate()
        self._last = ""

    def update(self, status: JobStatus) -> None:
        if self.quiet:
            return
        up = status.progress.upscale
        if self.tty:
            self._draw_bar(status)
            return
        line = format_progress(status, self._rate.eta(up.frames_done, up.frames_total))
        if line != self._last:
            print(line, file=self.stream, flush=True)
            self._last = line

    def _draw_bar(self, status: JobStatus) -> None:
        p = status.progress
        bar = self._bar
        if bar is None:
            bar = self._bar = tqdm(
                total=p.upscale.frames_total, file=self.stream, bar_format=BAR_FORMAT, dynamic_ncols=True, unit="frame"
            )
        if p.upscale.frames_total and bar.total != p.upscale.frames_total:
            bar.total = p.upscale.frames_total
        bar.set_description_str(status.state, refresh=False)
        # Short enough to leave the bar room on an 80-column terminal: the stage that is not upscale.
        stage = f"split {p.split.state}" if p.split.state != "succeeded" else f"merge {p.merge.state}"
        bar.set_postfix_str(f"{p.upscale.done}/{p.upscale.total} segments, {stage}", refresh=False)
        bar.update((p.upscale.frames_done or 0) - bar.n)  # feeds tqdm's rate and ETA
        bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
