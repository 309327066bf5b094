"""The worker's CLI as a user (or Batch) runs it: a subprocess, and what its failure must look like."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass
class Job:
    """A job on local paths, run stage by stage through the CLI."""

    manifest: str
    source: Path
    work: Path
    output: Path

    @property
    def out_dir(self) -> Path:
        return self.output.parent

    def files(self) -> dict[str, bytes]:
        """Every file of the job but the progress records (stages rewrite those)."""
        return {
            str(p.relative_to(self.work)): p.read_bytes()
            for p in self.work.rglob("*")
            if p.is_file() and p.parts[len(self.work.parts)] != "progress"
        }

    def run(self, *args: str, env: dict | None = None, preexec_fn: Callable[[], None] | None = None):
        return run_worker(*args, "--manifest", self.manifest, cwd=self.work.parent, env=env, preexec_fn=preexec_fn)
