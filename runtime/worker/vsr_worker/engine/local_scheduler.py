"""Run a job graph as local subprocesses, exactly as AWS Batch would run its jobs.

Each stage's ``command`` is executed as is (``vsr-worker`` resolves to this environment's
console script); array children get ``AWS_BATCH_JOB_ARRAY_INDEX`` like Batch sets it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from vsr_client.contract import ErrorCode, VsrError
from vsr_client.jobgraph import ARRAY_INDEX_ENV, WORKER_COMMAND, StageSpec


@dataclass
class StageFailure(Exception):
    stage: str
    index: Optional[int]
    exit_code: int
    message: str

    def __str__(self) -> str:
        where = self.stage if self.index is None else f"{self.stage}[{self.index}]"
        return f"{where} exited with {self.exit_code}: {self.message}"


def resolve_command(command: list[str]) -> list[str]:
    """Map the image's entrypoint name to this environment's worker."""
    if command and command[0] == WORKER_COMMAND:
        script = Path(sys.executable).with_name(WORKER_COMMAND)
        if script.exists():
            return [str(script), *command[1:]]
        if shutil.which(WORKER_COMMAND) is None:
            return [sys.executable, "-m", "vsr_worker", *command[1:]]
    return list(command)


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except FileNotFoundError:
        return ""
    return lines[-1] if lines else ""


class LocalScheduler:
    """Runs stages in dependency order; array children ``jobs`` at a time."""

    def __init__(
        self,
        log_dir: Path,
        jobs: int = 1,
        env: Optional[dict] = None,
        on_tick: Optional[Callable[[], None]] = None,
        poll: float = 0.2,
    ) -> None:
        self.log_dir = log_dir
        self.jobs = max(1, jobs)
        self.env = dict(env or {})
        self.on_tick = on_tick or (lambda: None)
        self.poll = poll

    def run(self, graph: list[StageSpec]) -> None:
        done: set[str] = set()
        pending = list(graph)
        while pending:
            ready = [s for s in pending if set(s.depends_on) <= done]
            if not ready:
                raise VsrError(ErrorCode.INTERNAL, f"job graph has unmet dependencies: {[s.name for s in pending]}")
            for stage in ready:
                self._run_stage(stage)
                done.add(stage.name)
                pending.remove(stage)

    def _run_stage(self, stage: StageSpec) -> None:
        indices: list[Optional[int]] = list(range(stage.array_size)) if stage.array_size else [None]
        queue = list(indices)
        running: dict[Optional[int], tuple[subprocess.Popen, Path]] = {}
        limit = self.jobs if stage.array_size else 1
        try:
            while queue or running:
                while queue and len(running) < limit:
                    index = queue.pop(0)
                    running[index] = self._start(stage, index)
                time.sleep(self.poll)
                self.on_tick()
                for index, (proc, log_path) in list(running.items()):
                    code = proc.poll()
                    if code is None:
                        continue
                    del running[index]
                    if code != 0:
                        raise StageFailure(stage.name, index, code, _last_line(log_path) or "no output")
        finally:
            for proc, _ in running.values():
                proc.terminate()
            for proc, _ in running.values():
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            self.on_tick()

    def _start(self, stage: StageSpec, index: Optional[int]) -> tuple[subprocess.Popen, Path]:
        env = {**os.environ, **stage.environment, **self.env}
        env.pop(ARRAY_INDEX_ENV, None)
        if index is not None:
            env[ARRAY_INDEX_ENV] = str(index)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{stage.name}_{index or 0:05d}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                resolve_command(stage.command), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
        return proc, log_path
