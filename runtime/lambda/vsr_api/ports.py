"""The request service's ports: what it needs from storage, probing, job records and scheduling.

Cloud adapters (S3, PyAV over ranged GETs, DynamoDB, Batch) and local ones (a directory, JSON
files, the local scheduler) implement them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Protocol

from vsr_api.job_record import JobRecord
from vsr_client.api_models import JobProgress, JobState, UploadTarget
from vsr_client.jobgraph import StageSpec


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


@dataclass(frozen=True)
class MediaInfo:
    format: str
    duration: float
    width: int
    height: int
    codec: str
    audio_streams: int
    bytes_read: int


@dataclass
class Observation:
    """What the scheduler says about a job now."""

    state: JobState
    progress: JobProgress
    failure_reason: str | None = None


class Storage(Protocol):
    def uri(self, key: str) -> str: ...

    def head(self, key: str) -> ObjectInfo | None: ...

    def open_ranged(self, obj: ObjectInfo) -> BinaryIO:
        """A seekable reader that fetches only what is read; ``.bytes_read`` counts it."""
        ...

    def put_json(self, key: str, data: object) -> None: ...

    def read_json(self, key: str) -> dict | None:
        """One JSON document, or None when there is none."""
        ...

    def read_json_under(self, prefix: str) -> list[dict]:
        """Every JSON document whose key starts with ``prefix`` (progress records)."""
        ...

    def download_url(self, key: str, expires: int = 3600) -> str: ...

    def upload_target(self, key: str, size: int | None, content_type: str, expires: int = 3600) -> UploadTarget: ...


class Prober(Protocol):
    def probe(self, storage: Storage, obj: ObjectInfo) -> MediaInfo: ...


class JobStore(Protocol):
    def get(self, job_id: str) -> JobRecord | None: ...

    def put(self, record: JobRecord) -> None: ...

    def list_recent(self, limit: int) -> list[JobRecord]: ...

    def claim_idempotency(self, idempotency_key: str, job_id: str, request_hash: str) -> tuple[str, str] | None:
        """Claim the key for ``job_id``; if it was taken, the (job id, request hash) holding it."""
        ...

    def release_idempotency(self, idempotency_key: str) -> None: ...

    def claim_output(self, output_key: str, job_id: str) -> str | None:
        """Claim an output key for ``job_id`` (atomically); the other job holding it, if any."""
        ...

    def release_output(self, output_key: str, job_id: str) -> None:
        """Give up ``job_id``'s claim (a failed or cancelled job); another job's claim stays."""
        ...


class Scheduler(Protocol):
    def submit(self, record: JobRecord, graph: list[StageSpec]) -> dict[str, str]:
        """Submit every stage; stage name -> scheduler job id. All or nothing."""
        ...

    def observe(self, record: JobRecord) -> Observation: ...

    def cancel(self, record: JobRecord) -> None: ...
