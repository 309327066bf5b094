"""Scheduler port on this machine: several jobs at once, each in a process group of its own.

The job graph the Batch scheduler would submit runs through the worker's local scheduler in
a job process (``job_process``); the run file it reads, ``<state dir>/runs/<job id>.json``,
outlives the server, so a server started after a crash resumes every unfinished job from its
stored parts. Stopping the server ends every job's process group and leaves the jobs
resumable; a cancel ends the group and the job.

Failure reasons are what a user may see: a code and a message with the data directory's paths
turned into keys; details (stage logs, tracebacks) stay in the server log and the job's logs.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from vsr_api.job_record import JobRecord
from vsr_api.keys import OUTPUT_SUFFIXES
from vsr_api.local import job_process
from vsr_api.local.process_groups import end_group, job_environment
from vsr_api.ports import Observation
from vsr_client.api_models import JobProgress, JobState
from vsr_client.contract import ErrorCode
from vsr_client.jobgraph import StageSpec

log = logging.getLogger(__name__)

# Codes whose message is about the user's input or request: shown. Others are internal.
_USER_CODES = {
    code.value
    for code in ErrorCode
    if code not in (ErrorCode.STAGE_FAILED, ErrorCode.INTERNAL, ErrorCode.INVALID_MANIFEST)
}
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/-])/(?:[^\s'\"/]+/)*[^\s'\"/,;)]*")
_STAGE = re.compile(r"^(split|upscale|merge)(\[\d+\])?\b")


def public_reason(code: str, message: str, data_dir: Path) -> str:
    """A failure as a user may see it: ``[code] message`` with no path of this machine in it."""
    if code not in _USER_CODES:
        stage = _STAGE.match(message)
        where = f"{stage.group(0)} " if stage else "a stage "
        return f"[{code}] {where}failed; the server log has the details"
    text = message.replace(f"{data_dir}{os.sep}", "")  # a path in the bucket is a key
    return f"[{code}] {_ABSOLUTE_PATH.sub('<path>', text)}"


def default_concurrency() -> int:
    return max(1, os.cpu_count() or 1)


@dataclass
class _Run:
    job_id: str
    run_file: Path
    state: JobState = "queued"
    reason: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    proc: subprocess.Popen | None = None


class LocalJobRunner:
    def __init__(
        self,
        root: Path,
        jobs: int | None = None,
        concurrent_jobs: int | None = None,
        state_dir: Path | None = None,
    ) -> None:
        self.root = root.resolve()
        self.concurrent_jobs = max(1, concurrent_jobs or default_concurrency())
        # Upscale processes per job: the cores shared among the jobs that run at once.
        self.jobs = jobs or max(1, (os.cpu_count() or 1) // self.concurrent_jobs)
        self.runs_dir = (state_dir or self.root / ".vsr-api") / "runs"
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self._pool = ThreadPoolExecutor(max_workers=self.concurrent_jobs, thread_name_prefix="vsr-job")
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    # -- the Scheduler port ---------------------------------------------------------------
    def submit(self, record: JobRecord, graph: list[StageSpec]) -> dict[str, str]:
        run_file = self.runs_dir / f"{record.job_id}.json"
        spec = {
            "job_id": record.job_id,
            "work": str(self.root / record.work_prefix),
            "output": str(self.root / record.output_key),
            "segments": record.segments,
            "jobs": self.jobs,
            "keep_logs": record.task == "debug",
            "graph": [s.model_dump(mode="json") for s in graph],
        }
        tmp = run_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(spec, indent=2))
        os.replace(tmp, run_file)
        self._start(_Run(record.job_id, run_file))
        return {s.name: f"local:{record.job_id}:{s.name}" for s in graph}

    def observe(self, record: JobRecord) -> Observation:
        with self._lock:
            run = self._runs.get(record.job_id)
        if run is None:  # not started by this server and not resumed: nothing will run it
            return Observation(state="failed", progress=record.progress, failure_reason=_LOST)
        return Observation(state=run.state, progress=JobProgress(), failure_reason=run.reason)

    def cancel(self, record: JobRecord) -> None:
        with self._lock:
            run = self._runs.get(record.job_id)
        if run is None:
            return
        run.cancel.set()
        if run.state == "queued":
            run.state, run.reason = "cancelled", "cancelled by request"
        proc = run.proc
        if proc is not None:
            end_group(proc.pid, grace=5)

    # -- resuming after a restart ---------------------------------------------------------
    def resume(self, record: JobRecord) -> bool:
        """Take up a job a previous server left unfinished; False if it never had a run file."""
        run_file = self.runs_dir / f"{record.job_id}.json"
        if not run_file.is_file():
            return False
        run = _Run(record.job_id, run_file)
        outcome = self._outcome(run)
        if outcome is not None:  # it finished; only nobody asked before the restart
            self._finish(run, outcome)
            with self._lock:
                self._runs[run.job_id] = run
            return True
        _forget_unfinished_progress(self.root / record.work_prefix)
        log.info("resuming local job", extra={"job_id": record.job_id})
        self._start(run)
        return True

    def forget(self, job_id: str) -> None:
        """Drop the run file and outcome of a job that has ended (nothing will resume it)."""
        with self._lock:
            run = self._runs.get(job_id)
            if run is not None and run.state in ("queued", "running"):
                return
            self._runs.pop(job_id, None)
        run_file = self.runs_dir / f"{job_id}.json"
        job_process.outcome_path(run_file).unlink(missing_ok=True)
        run_file.unlink(missing_ok=True)

    def state(self, job_id: str) -> JobState | None:
        """What the runner itself knows of a job (None: not run by this server)."""
        with self._lock:
            run = self._runs.get(job_id)
        return run.state if run else None

    def shutdown(self) -> None:
        """End every running job's process group; the jobs stay resumable."""
        self._stopping.set()
        with self._lock:
            running = [run.proc for run in self._runs.values() if run.proc is not None]
        for proc in running:
            end_group(proc.pid, grace=5)
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- running --------------------------------------------------------------------------
    def _start(self, run: _Run) -> None:
        with self._lock:
            self._runs[run.job_id] = run
        self._pool.submit(self._execute, run)

    def _execute(self, run: _Run) -> None:
        if run.cancel.is_set() or self._stopping.is_set():
            return
        spec = json.loads(run.run_file.read_text())
        logs = Path(spec["work"]) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / "job.log", "ab") as out:
            # PR_SET_PDEATHSIG fires when the *thread* that forked exits: this one waits below.
            run.proc = subprocess.Popen(
                [sys.executable, "-m", job_process.__name__, str(run.run_file)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **job_environment(self.root, run.job_id)},
            )
        run.state = "running"
        log.info("local job started", extra={"job_id": run.job_id, "pid": run.proc.pid})
        code = run.proc.wait()
        end_group(run.proc.pid, grace=1)  # stage processes that outlived the job process
        if self._stopping.is_set():
            return  # stopped by shutdown: the next server resumes it
        outcome = self._outcome(run)
        if run.cancel.is_set():
            run.state, run.reason = "cancelled", "cancelled by request"
        elif outcome is None:
            log.error("local job process ended without an outcome", extra={"job_id": run.job_id, "exit": code})
            run.state, run.reason = "failed", "[internal_error] the job's process ended early; see the server log"
        else:
            self._finish(run, outcome)
        run.proc = None

    def _outcome(self, run: _Run) -> dict | None:
        try:
            return json.loads(job_process.outcome_path(run.run_file).read_text())
        except (OSError, ValueError):
            return None

    def _finish(self, run: _Run, outcome: dict) -> None:
        spec = json.loads(run.run_file.read_text())
        _remove_unfinished_outputs(Path(spec["output"]))
        if outcome.get("state") == "succeeded":
            run.state, run.reason = "succeeded", None
            if not spec.get("keep_logs"):
                shutil.rmtree(Path(spec["work"]) / "logs", ignore_errors=True)
        else:
            code, message = str(outcome.get("code")), str(outcome.get("message"))
            log.warning("local job failed", extra={"job_id": run.job_id, "code": code, "detail": message})
            run.state, run.reason = "failed", public_reason(code, message, self.root)
        log.info("local job finished", extra={"job_id": run.job_id, "state": run.state})


_LOST = "[internal_error] the server lost this job; submit it again"
_INTERMEDIATES = ("split", "upscaled", "logs", "debug")


def remove_intermediates(work: Path) -> bool:
    """Delete a job's segments, parts and logs (manifest, progress and result stay); whether
    there was anything to delete."""
    found = [work / name for name in _INTERMEDIATES if (work / name).exists()]
    for path in found:
        shutil.rmtree(path, ignore_errors=True)
    return bool(found)


def _remove_unfinished_outputs(output: Path) -> None:
    """Temporary files a killed merge left beside this job's result (the worker writes
    ``.<name>.<random>.tmp<suffix>`` and renames it). The output key is this job's alone."""
    for suffix in OUTPUT_SUFFIXES:
        for path in output.parent.glob(f".{output.with_suffix(suffix).name}.*.tmp*"):
            path.unlink(missing_ok=True)


def _forget_unfinished_progress(work: Path) -> None:
    """Drop the progress records of stages that were cut off: they would say 'running' until
    the resumed stage writes again. Finished stages keep theirs."""
    for path in (work / "progress").glob("*.json"):
        try:
            done = json.loads(path.read_text()).get("state") == "done"
        except (OSError, ValueError):
            done = False
        if not done:
            path.unlink(missing_ok=True)
