"""Run a job graph as local subprocesses, exactly as AWS Batch would run its jobs.

Each stage's ``command`` is executed as is (``vsr-worker`` resolves to this environment's
console script); array children get ``AWS_BATCH_JOB_ARRAY_INDEX`` like Batch sets it. A
failed process is tried again by the job definitions' own rules (vsr_client.retry_matrix),
with ``AWS_BATCH_JOB_ATTEMPT`` set as Batch sets it.
"""

from __future__ import annotations

import logging
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
from vsr_client.retry_matrix import ATTEMPT_ENV, DEFAULT_ATTEMPTS, batch_action
from vsr_worker.engine.stage_process import StageProcess

log = logging.getLogger(__name__)


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


class LocalScheduler:
    """Runs stages in dependency order; array children ``jobs`` at a time."""

    def __init__(
        self,
        log_dir: Path,
        jobs: int = 1,
        env: Optional[dict] = None,
        on_tick: Optional[Callable[[], None]] = None,
        poll: float = 0.2,
        attempts: int = DEFAULT_ATTEMPTS,
    ) -> None:
        self.log_dir = log_dir
        self.attempts = max(1, attempts)
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
        queue: list[tuple[Optional[int], int]] = [(index, 1) for index in indices]  # (index, attempt)
        running: dict[Optional[int], tuple[StageProcess, int]] = {}
        limit = self.jobs if stage.array_size else 1
        try:
            while queue or running:
                while queue and len(running) < limit:
                    index, attempt = queue.pop(0)
                    running[index] = (self._start(stage, index, attempt), attempt)
                time.sleep(self.poll)
                self.on_tick()
                for index, (child, attempt) in list(running.items()):
                    code = child.poll()
                    if code is None:
                        continue
                    del running[index]
                    if code == 0:
                        continue
                    failure = StageFailure(stage.name, index, code, child.last_line() or "no output")
                    if attempt < self.attempts and batch_action(code) == "RETRY":
                        log.warning("%s (attempt %d of %d): trying again", failure, attempt, self.attempts)
                        queue.append((index, attempt + 1))
                        continue
                    raise failure
        finally:
            for child, _ in running.values():
                child.proc.terminate()
            for child, _ in running.values():
                try:
                    child.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.proc.kill()
            self.on_tick()

    def _start(self, stage: StageSpec, index: Optional[int], attempt: int) -> StageProcess:
        env = {**os.environ, **stage.environment, **self.env}
        env.pop(ARRAY_INDEX_ENV, None)
        if index is not None:
            env[ARRAY_INDEX_ENV] = str(index)
        env[ATTEMPT_ENV] = str(attempt)
        log_path = self.log_dir / f"{stage.name}_{index or 0:05d}.log"
        return StageProcess(resolve_command(stage.command), env, log_path)
