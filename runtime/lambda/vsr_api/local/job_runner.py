"""Scheduler port on this machine: jobs run one at a time through the worker's local scheduler.

The same job graph the Batch scheduler submits runs as subprocesses (``vsr-worker split`` …)
in a background thread; a cancel stops the running stage's processes.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from vsr_api.job_record import JobRecord
from vsr_api.ports import Observation
from vsr_client.api_models import JobProgress, JobState
from vsr_client.contract import VsrError
from vsr_client.jobgraph import StageSpec

log = logging.getLogger(__name__)


class JobCancelled(Exception):
    pass


@dataclass
class _Run:
    state: JobState = "queued"
    reason: str | None = None
    cancel: threading.Event = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.cancel = threading.Event()


class LocalJobRunner:
    def __init__(self, root: Path, jobs: int | None = None, concurrent_jobs: int = 1) -> None:
        self.root = root
        self.jobs = jobs
        self._pool = ThreadPoolExecutor(max_workers=concurrent_jobs, thread_name_prefix="vsr-job")
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()

    def submit(self, record: JobRecord, graph: list[StageSpec]) -> dict[str, str]:
        run = _Run()
        with self._lock:
            self._runs[record.job_id] = run
        self._pool.submit(
            self._execute, record.job_id, Path(self.root / record.work_prefix), record.segments, graph, run
        )
        return {spec.name: f"local:{record.job_id}:{spec.name}" for spec in graph}

    def _execute(self, job_id: str, work: Path, segments: int, graph: list[StageSpec], run: _Run) -> None:
        from vsr_worker.engine.local_run import execute_graph

        if run.cancel.is_set():
            return

        def check_cancel() -> None:
            if run.cancel.is_set():
                raise JobCancelled()

        run.state = "running"
        log.info("local job started", extra={"job_id": job_id})
        try:
            execute_graph(graph, work, segments, jobs=self.jobs, on_tick=check_cancel)
        except JobCancelled:
            run.state, run.reason = "cancelled", "cancelled by request"
        except VsrError as exc:
            run.state, run.reason = "failed", str(exc)
        except Exception as exc:  # keep the server alive; the job reports it
            log.exception("local job crashed", extra={"job_id": job_id})
            run.state, run.reason = "failed", f"internal error: {exc}"
        else:
            run.state = "succeeded"  # merge itself removed the intermediates of an inference job
        log.info("local job finished", extra={"job_id": job_id, "state": run.state})

    def observe(self, record: JobRecord) -> Observation:
        with self._lock:
            run = self._runs.get(record.job_id)
        if run is None:
            return Observation(state="failed", progress=record.progress, failure_reason="the local server restarted")
        return Observation(state=run.state, progress=JobProgress(), failure_reason=run.reason)

    def state(self, job_id: str) -> JobState | None:
        """What the runner itself knows of a job (None: not run by this server)."""
        with self._lock:
            run = self._runs.get(job_id)
        return run.state if run else None

    def cancel(self, record: JobRecord) -> None:
        with self._lock:
            run = self._runs.get(record.job_id)
        if run is not None:
            run.cancel.set()
            if run.state == "queued":
                run.state, run.reason = "cancelled", "cancelled by request"

    def shutdown(self) -> None:
        with self._lock:
            for run in self._runs.values():
                run.cancel.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
