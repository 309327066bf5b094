"""Run a job graph as local subprocesses, exactly as AWS Batch would run its jobs.

Each stage's ``command`` is executed as is (``vsr-worker`` resolves to this environment's
console script); array children get ``AWS_BATCH_JOB_ARRAY_INDEX`` like Batch sets it. A
failed process is tried again by the job definitions' own rules (vsr_client.retry_matrix),
with ``AWS_BATCH_JOB_ATTEMPT`` set as Batch sets it. An array stage with more children than
``jobs`` whose spec names an ``index_flag`` runs as ``jobs`` persistent processes instead,
each given its share of the indices (round robin) through that flag: a process pays its
start-up and model load once, not once per child (a retried process skips the segments it
already finished).
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
from typing import Callable, Dict, List, Optional, Tuple

from vsr_client.codes import ErrorCode, VsrError
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


def index_groups(children: int, jobs: int) -> List[List[int]]:
    """Array indices per persistent process: round robin, so shares differ by at most one."""
    n = max(1, min(jobs, children))
    return [list(range(k, children, n)) for k in range(n)]


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
        poll: float = 0.05,
        tick_every: float = 0.25,
        attempts: int = DEFAULT_ATTEMPTS,
    ) -> None:
        """``poll``: how often finished processes are noticed (a stage's end is a few of these
        late at most); ``on_tick`` (progress, cancellation) runs at most every ``tick_every``."""
        self.log_dir = log_dir
        self.attempts = max(1, attempts)
        self.jobs = max(1, jobs)
        self.env = dict(env or {})
        self.on_tick = on_tick or (lambda: None)
        self.poll = poll
        self.tick_every = tick_every
        self._last_tick = 0.0
        # Wall seconds of each process, keyed by (stage, its first array index).
        self.process_seconds: Dict[Tuple[str, int], float] = {}

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
        if stage.array_size and stage.index_flag and self.jobs < stage.array_size:
            units: List[List[int]] = index_groups(stage.array_size, self.jobs)
        else:
            units = [[i] for i in range(stage.array_size)] if stage.array_size else [[]]
        queue: List[Tuple[List[int], int]] = [(unit, 1) for unit in units]  # (indices, attempt)
        running: Dict[int, Tuple[StageProcess, List[int], int, float]] = {}
        limit = self.jobs if stage.array_size else 1
        try:
            while queue or running:
                while queue and len(running) < limit:
                    unit, attempt = queue.pop(0)
                    child = self._start(stage, unit, attempt)
                    running[child.proc.pid] = (child, unit, attempt, time.monotonic())
                time.sleep(self.poll)
                if time.monotonic() - self._last_tick >= self.tick_every:
                    self._last_tick = time.monotonic()
                    self.on_tick()
                for pid, (child, unit, attempt, started) in list(running.items()):
                    code = child.poll()
                    if code is None:
                        continue
                    del running[pid]
                    self.process_seconds[(stage.name, unit[0] if unit else 0)] = time.monotonic() - started
                    if code == 0:
                        continue
                    first = unit[0] if unit else None
                    failure = StageFailure(stage.name, first, code, child.last_line() or "no output")
                    if attempt < self.attempts and batch_action(code) == "RETRY":
                        log.warning("%s (attempt %d of %d): trying again", failure, attempt, self.attempts)
                        queue.append((unit, attempt + 1))
                        continue
                    raise failure
        finally:
            for child, _, _, _ in running.values():
                child.proc.terminate()
            for child, _, _, _ in running.values():
                try:
                    child.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.proc.kill()
            self.on_tick()

    def _start(self, stage: StageSpec, unit: List[int], attempt: int) -> StageProcess:
        """One process for array indices ``unit`` (none: a plain job), attempt ``attempt``."""
        env = {**os.environ, **stage.environment, **self.env}
        env.pop(ARRAY_INDEX_ENV, None)
        command = stage.command
        if len(unit) == 1:
            env[ARRAY_INDEX_ENV] = str(unit[0])  # exactly as Batch runs an array child
        elif len(unit) > 1:
            command = stage.command_for(unit)
        env[ATTEMPT_ENV] = str(attempt)
        log_path = self.log_dir / f"{stage.name}_{unit[0] if unit else 0:05d}.log"
        return StageProcess(resolve_command(command), env, log_path)
