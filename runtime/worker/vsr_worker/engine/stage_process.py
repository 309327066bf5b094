"""One stage's process, its output read through a pipe.

The stage's stdout and stderr go to a pipe, not straight to its log file: a reader thread
keeps the last lines in memory and copies every line into the log while the log can be
written. On a full disk the log cannot, and a child writing to it directly would lose its
own error line; this way the scheduler still reports it.
"""

from __future__ import annotations

import collections
import contextlib
import subprocess
import threading
from pathlib import Path
from typing import IO, Optional

_TAIL_LINES = 64


class StageProcess:
    def __init__(self, command: list[str], env: dict, log_path: Path) -> None:
        self.log_path = log_path
        self._tail: collections.deque[bytes] = collections.deque(maxlen=_TAIL_LINES)
        self._log = _open_log(log_path)
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
        self._reader = threading.Thread(target=self._pump, name=f"log:{log_path.name}", daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for line in iter(self.proc.stdout.readline, b""):
                self._tail.append(line)
                if self._log is not None:
                    try:
                        self._log.write(line)
                        self._log.flush()
                    except OSError:  # the disk is full: keep reading, the tail still has it
                        self._close_log()
        self._close_log()

    def _close_log(self) -> None:
        log, self._log = self._log, None
        if log is not None:
            with contextlib.suppress(OSError):
                log.close()

    def poll(self) -> Optional[int]:
        return self.proc.poll()

    def last_line(self) -> str:
        """The last non-empty line the stage printed (after it has exited)."""
        self._reader.join(timeout=5)
        for line in reversed(self._tail):
            text = line.decode(errors="replace").strip()
            if text:
                return text
        return ""


def _open_log(path: Path) -> Optional[IO[bytes]]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "ab")  # appended: a retried attempt keeps the earlier one's lines
    except OSError:
        return None
