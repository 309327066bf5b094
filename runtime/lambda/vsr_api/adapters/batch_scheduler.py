"""Scheduler port over AWS Batch: one job per stage, array job for upscale.

Each stage is submitted to the job definition the stack made for it, whose command is
``["vsr-worker", "<stage>", "--manifest", "Ref::manifest"]``; the manifest URI goes in
``parameters``, with the vsr job id (which Batch's state change events then carry). Split and
merge go to the CPU queues, upscale to the accelerator's (``ApiSettings.queue``).

Upscale depends on split; merge depends on the upscale array parent, which Batch resolves
only when every child has finished.
"""

from __future__ import annotations

import logging
from typing import Any

from vsr_api.job_record import JobRecord
from vsr_api.ports import Observation
from vsr_api.settings import ApiSettings
from vsr_client.api_models import JobProgress, JobState, StageProgress
from vsr_client.jobgraph import CANCEL_REASON_PREFIX, JOB_ID_PARAMETER, MANIFEST_PARAMETER, STACK_TAG, StageSpec

log = logging.getLogger(__name__)

JOB_ID_TAG = "vsr:job-id"
STAGE_TAG = "vsr:stage"
_DEPENDENT_FAILED = "Dependent Job failed"
_STAGE_STATE = {
    "SUBMITTED": "pending",
    "PENDING": "pending",
    "RUNNABLE": "pending",
    "STARTING": "running",
    "RUNNING": "running",
    "SUCCEEDED": "succeeded",
    "FAILED": "failed",
}


def submit_job_params(
    spec: StageSpec, record: JobRecord, settings: ApiSettings, manifest_uri: str, depends_on: str | None
) -> dict[str, Any]:
    """The SubmitJob request of one stage (validated offline against botocore's model in tests)."""
    params: dict[str, Any] = {
        "jobName": f"vsr-{record.job_id}-{spec.name}"[:128].replace(".", "-"),
        "jobQueue": settings.queue(record.env, spec.name),
        "jobDefinition": settings.stage_definitions()[spec.name],
        "parameters": {MANIFEST_PARAMETER: manifest_uri, JOB_ID_PARAMETER: record.job_id},
        # The stack tag is what the Lambda's IAM policy lets it terminate (stack/iam.py).
        "tags": {JOB_ID_TAG: record.job_id, STAGE_TAG: spec.name, STACK_TAG: settings.stack},
        "propagateTags": True,
    }
    if spec.array_size:
        params["arrayProperties"] = {"size": spec.array_size}
    if depends_on:
        params["dependsOn"] = [{"jobId": depends_on}]
    if spec.environment:
        params["containerOverrides"] = {"environment": [{"name": k, "value": v} for k, v in spec.environment.items()]}
    return params


class BatchScheduler:
    def __init__(self, batch: Any, settings: ApiSettings) -> None:
        self.batch = batch
        self.settings = settings

    def submit(self, record: JobRecord, graph: list[StageSpec]) -> dict[str, str]:
        manifest_uri = f"s3://{self.settings.bucket}/{record.manifest_key}"
        ids: dict[str, str] = {}
        try:
            for spec in graph:
                # The graph is a chain: each stage depends on the one before it.
                parent = ids[spec.depends_on[-1]] if spec.depends_on else None
                params = submit_job_params(spec, record, self.settings, manifest_uri, parent)
                ids[spec.name] = self.batch.submit_job(**params)["jobId"]
        except Exception:
            self._terminate(list(ids.values()), f"vsr job {record.job_id}: submit failed half-way")
            raise
        return ids

    def cancel(self, record: JobRecord) -> None:
        self._terminate(list(record.scheduler_ids.values()), f"{CANCEL_REASON_PREFIX} (vsr job {record.job_id})")

    def _terminate(self, job_ids: list[str], reason: str) -> None:
        # Later stages first, so no dependent starts while its parent is being stopped.
        for job_id in reversed(job_ids):
            try:
                self.batch.terminate_job(jobId=job_id, reason=reason)
            except Exception:  # keep going: stop as much as possible
                log.exception("could not terminate Batch job", extra={"batch_job_id": job_id})

    def observe(self, record: JobRecord) -> Observation:
        ids = record.scheduler_ids
        found = {j["jobId"]: j for j in self.batch.describe_jobs(jobs=list(ids.values()))["jobs"]}
        stages: dict[str, StageProgress] = {}
        reasons: list[str] = []
        for stage in ("split", "upscale", "merge"):
            job = found.get(ids.get(stage, ""))
            if job is None:
                stages[stage] = StageProgress(total=record.segments if stage == "upscale" else 1)
                continue
            progress, reason = self._stage(stage, job, record.segments)
            stages[stage] = progress
            if reason:
                reasons.append(f"{stage}: {reason}")
        progress = JobProgress(**stages)
        reasons.sort(key=lambda r: _DEPENDENT_FAILED in r)  # the root cause, not its dependents
        return Observation(
            state=_job_state(progress), progress=progress, failure_reason=reasons[0] if reasons else None
        )

    def _stage(self, stage: str, job: dict, segments: int) -> tuple[StageProgress, str | None]:
        state = _STAGE_STATE.get(job.get("status", ""), "pending")
        reason = _reason(job) if state == "failed" else None
        if stage != "upscale" or "arrayProperties" not in job:
            return StageProgress(
                state=state, done=int(state == "succeeded"), total=1, failed=int(state == "failed"), reason=reason
            ), reason
        summary = job["arrayProperties"].get("statusSummary", {}) or {}
        total = int(job["arrayProperties"].get("size", segments))
        done = int(summary.get("SUCCEEDED", 0))
        failed = int(summary.get("FAILED", 0))
        if failed or state == "failed":
            reason = self._failed_child_reason(job["jobId"]) or reason
            failed = max(failed, 1)
            state = "failed"
        elif state == "succeeded":
            done = total
        elif done or summary.get("RUNNING") or summary.get("STARTING"):
            state = "running"
        return StageProgress(state=state, done=done, total=total, failed=failed, reason=reason), reason

    def _failed_child_reason(self, parent: str) -> str | None:
        children = self.batch.list_jobs(arrayJobId=parent, jobStatus="FAILED").get("jobSummaryList", [])
        for child in sorted(children, key=lambda c: c.get("arrayProperties", {}).get("index", 0)):
            index = child.get("arrayProperties", {}).get("index")
            detail = self.batch.describe_jobs(jobs=[child["jobId"]])["jobs"]
            why = _reason(detail[0]) if detail else child.get("statusReason", "failed")
            return f"child {index}: {why}" if index is not None else why
        return None


def _reason(job: dict) -> str:
    container = job.get("container", {}) or {}
    parts = [job.get("statusReason") or "failed"]
    if container.get("exitCode") is not None:
        parts.append(f"exit code {container['exitCode']}")
    if container.get("reason"):
        parts.append(container["reason"])
    return "; ".join(parts)


def _job_state(progress: JobProgress) -> JobState:
    stages = (progress.split, progress.upscale, progress.merge)
    if any(s.state == "failed" for s in stages):
        return "failed"
    if progress.merge.state == "succeeded":
        return "succeeded"
    if any(s.state in ("running", "succeeded") for s in stages) or progress.upscale.done:
        return "running"
    return "queued"
