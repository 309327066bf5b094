"""The worker's CLI as a user (or Batch) runs it: a subprocess, and what its failure must look like."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

WORKER = [sys.executable, "-m", "vsr_worker"]


def run_worker(
    *args: str,
    cwd: Path,
    env: dict | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*WORKER, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={**os.environ, **(env or {})},
        preexec_fn=preexec_fn,
    )


def error_line(proc: subprocess.CompletedProcess, code: str, exit_code: int) -> str:
    """The documented failure: exit ``exit_code``, last line ``vsr-worker: error [code]: ...``,
    no traceback. Returns the message."""
    assert proc.returncode == int(exit_code), proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    prefix = f"vsr-worker: error [{code}]: "
    assert last.startswith(prefix), proc.stderr
    return last[len(prefix) :]
