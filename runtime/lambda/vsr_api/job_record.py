"""What the job store keeps about one job."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from vsr_client.api_models import JobProgress, JobState, SubmitRequest


def utcnow() -> datetime:
    return datetime.now(UTC)


def request_fingerprint(request: SubmitRequest) -> str:
    """Hash of what a request asks for, to tell a retry from a different job with a reused key."""
    fields = request.model_dump(mode="json", exclude={"idempotency_key"})
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


class JobRecord(BaseModel):
    job_id: str
    state: JobState = "queued"
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    key: str
    scale: int
    task: str
    env: str
    model: str
    segment_time: float
    segments: int
    duration: float | None = None
    output_key: str
    work_prefix: str
    manifest_key: str
    scheduler_ids: dict[str, str] = Field(default_factory=dict, description="stage -> Batch job id")
    progress: JobProgress = JobProgress()
    failure_reason: str | None = None
    idempotency_key: str | None = None
    request_hash: str = ""
    expires_at: int = 0

    def touch(self) -> None:
        self.updated_at = utcnow()
