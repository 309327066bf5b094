"""The HTTP API's contract: request, response, status and error bodies.

One definition, used by the Lambda handler, the local server and the SDK. Importable on
Python 3.10.

Unknown request fields are **rejected** (``unknown_field``, 400): a misspelt optional field
(``segmenttime``) would otherwise be silently replaced by its default and cost a whole job.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal, get_args

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from vsr_client.contract import DEFAULT_SEGMENT_TIME, SCALES, ErrorCode, VsrError

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
StageState = Literal["pending", "running", "succeeded", "failed", "cancelled"]
Scale = Literal[2, 4]
Task = Literal["inference", "debug"]
Env = Literal["spot", "onDemand"]
TERMINAL_STATES = ("succeeded", "failed", "cancelled")
TASKS: tuple[Task, ...] = get_args(Task)
ENVS: tuple[Env, ...] = get_args(Env)
API_KEY_HEADER = "x-api-key"
IDEMPOTENCY_HEADER = "idempotency-key"
MAX_BODY_BYTES = 16 * 1024

# HTTP status of every error code the API can answer with.
HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.MISSING_KEY: 400,
    ErrorCode.INVALID_KEY: 400,
    ErrorCode.KEY_RESERVED: 403,
    ErrorCode.INPUT_NOT_FOUND: 404,
    ErrorCode.EMPTY_INPUT: 422,
    ErrorCode.NOT_A_VIDEO: 422,
    ErrorCode.AUDIO_ONLY: 422,
    ErrorCode.CORRUPT_INPUT: 422,
    ErrorCode.UNSUPPORTED_CODEC: 422,
    ErrorCode.INPUT_TOO_LARGE: 413,
    ErrorCode.INPUT_TOO_LONG: 422,
    ErrorCode.INVALID_SCALE: 400,
    ErrorCode.INVALID_SEGMENT_TIME: 400,
    ErrorCode.INVALID_MODEL: 400,
    ErrorCode.INVALID_ENV: 400,
    ErrorCode.INVALID_TASK: 400,
    ErrorCode.INVALID_OUTPUT_KEY: 400,
    ErrorCode.INVALID_ARGUMENT: 400,
    ErrorCode.UNKNOWN_FIELD: 400,
    ErrorCode.INVALID_JSON: 400,
    ErrorCode.BODY_TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.HOST_NOT_ALLOWED: 403,
    ErrorCode.JOB_NOT_FOUND: 404,
    ErrorCode.ROUTE_NOT_FOUND: 404,
    ErrorCode.IDEMPOTENCY_CONFLICT: 409,
    ErrorCode.JOB_NOT_CANCELLABLE: 409,
    ErrorCode.OUTPUT_EXISTS: 409,
    ErrorCode.THROTTLED: 429,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.REQUEST_TIMEOUT: 408,
    ErrorCode.RANGE_NOT_SATISFIABLE: 416,
    ErrorCode.TOO_MANY_SEGMENTS: 422,
    ErrorCode.SUBMIT_FAILED: 502,
    ErrorCode.STAGE_FAILED: 500,
    ErrorCode.INTERNAL: 500,
}


def http_status(code: ErrorCode) -> int:
    return HTTP_STATUS.get(code, 500)


class SubmitRequest(BaseModel):
    """``POST /`` and ``POST /jobs``: the seed's fields plus optional extensions."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(
        description="object key of the source video in the bucket, at the root or under any prefix "
        "but the service's own (jobs/, outputs/)"
    )
    scale: Scale = Field(default=2, description="upscale factor per side")
    task: Task = Field(default="inference", description="'debug' keeps every intermediate")
    env: Env = Field(default="spot", description="which Batch queue runs the jobs")
    segment_time: float = Field(default=DEFAULT_SEGMENT_TIME, description="seconds of video per parallel segment")
    model: str | None = Field(default=None, description="model name; the deployment's default when omitted")
    output_key: str | None = Field(default=None, description="where the result goes (under the output prefix)")
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=128, description="same key, same job: a retry submits nothing new"
    )


# Which error code a validation failure of each request field maps to.
_FIELD_CODES: dict[str, ErrorCode] = {
    "key": ErrorCode.INVALID_KEY,
    "scale": ErrorCode.INVALID_SCALE,
    "task": ErrorCode.INVALID_TASK,
    "env": ErrorCode.INVALID_ENV,
    "segment_time": ErrorCode.INVALID_SEGMENT_TIME,
    "model": ErrorCode.INVALID_MODEL,
    "output_key": ErrorCode.INVALID_OUTPUT_KEY,
    "idempotency_key": ErrorCode.INVALID_ARGUMENT,
}


def _coerce_numbers(data: dict[str, Any]) -> dict[str, Any]:
    """Accept ``"4"`` for 4 and ``"2.5"`` for 2.5 (form-minded clients send strings)."""
    out = dict(data)
    for name in ("scale", "segment_time"):
        value = out.get(name)
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                continue
            out[name] = int(number) if name == "scale" and number.is_integer() else number
        elif name == "scale" and isinstance(value, float) and value.is_integer():
            out[name] = int(value)
    return out


def parse_submit_request(data: Any) -> SubmitRequest:
    """Validate a decoded JSON body; every failure is a VsrError naming the field."""
    if not isinstance(data, dict):
        raise VsrError(ErrorCode.INVALID_JSON, "request body must be a JSON object")
    key = data.get("key")
    if key is None or (isinstance(key, str) and not key.strip()):
        raise VsrError(ErrorCode.MISSING_KEY, "'key' is required: the object key of the source video", "key")
    unknown = sorted(set(data) - set(SubmitRequest.model_fields))
    if unknown:
        allowed = ", ".join(SubmitRequest.model_fields)
        raise VsrError(ErrorCode.UNKNOWN_FIELD, f"unknown field {unknown[0]!r}; allowed: {allowed}", unknown[0])
    segment_time = data.get("segment_time")
    if isinstance(segment_time, bool):
        raise VsrError(ErrorCode.INVALID_SEGMENT_TIME, "segment_time must be a number of seconds", "segment_time")
    try:
        request = SubmitRequest.model_validate(_coerce_numbers(data))
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else None
        code = _FIELD_CODES.get(field or "", ErrorCode.INVALID_ARGUMENT)
        messages = {
            "scale": f"scale must be one of {', '.join(map(str, SCALES))}, got {data.get('scale')!r}",
            "task": f"task must be one of {', '.join(TASKS)}, got {data.get('task')!r}",
            "env": f"env must be one of {', '.join(ENVS)}, got {data.get('env')!r}",
        }
        raise VsrError(code, messages.get(field or "", f"{field}: {first['msg']}"), field) from None
    if not math.isfinite(request.segment_time) or request.segment_time <= 0:
        raise VsrError(
            ErrorCode.INVALID_SEGMENT_TIME,
            f"segment_time must be a positive number of seconds, got {request.segment_time!r}",
            "segment_time",
        )
    return request


class JobAccepted(BaseModel):
    """202 answer to a submit (200 when an idempotency key matched an existing job)."""

    job_id: str
    status_url: str
    state: JobState = "queued"
    segments: int
    output_key: str
    idempotent_replay: bool = False


class StageProgress(BaseModel):
    state: StageState = "pending"
    done: int = Field(default=0, description="children (upscale) or 0/1 finished")
    total: int = 1
    frames_done: int | None = None
    frames_total: int | None = None
    failed: int = 0
    reason: str | None = None


class JobProgress(BaseModel):
    split: StageProgress = StageProgress()
    upscale: StageProgress = StageProgress()
    merge: StageProgress = StageProgress()


class JobStatus(BaseModel):
    """``GET /jobs/{id}``."""

    job_id: str
    state: JobState
    created_at: datetime
    updated_at: datetime | None = None
    key: str
    scale: Scale
    task: Task
    env: Env
    model: str
    segment_time: float
    segments: int
    duration: float | None = None
    output_key: str
    progress: JobProgress = JobProgress()
    failure_reason: str | None = None
    download_url: str | None = Field(default=None, description="presigned GET of the result, when succeeded")

    @property
    def done(self) -> bool:
        return self.state in TERMINAL_STATES


class JobList(BaseModel):
    """``GET /jobs``: most recent first."""

    jobs: list[JobStatus]


class UploadRequest(BaseModel):
    """``POST /uploads``: where to PUT a file (presigned; multipart above the part size)."""

    model_config = ConfigDict(extra="forbid")

    filename: str | None = Field(default=None, description="name of the local file; used to name the key")
    key: str | None = Field(default=None, description="key to upload to (under the input prefix)")
    size: int | None = Field(default=None, ge=0, description="bytes; multipart when above the part size")
    content_type: str = "application/octet-stream"


class UploadPart(BaseModel):
    part_number: int
    url: str


class UploadTarget(BaseModel):
    """A single presigned PUT (``url``) or a multipart upload (``parts`` + ``complete_url``).

    Multipart: PUT each part's bytes (``part_size`` each, the last one shorter) to its URL,
    keep each answer's ``ETag`` header, then POST the CompleteMultipartUpload XML to
    ``complete_url`` (the SDK does all of this).
    """

    key: str
    method: Literal["PUT"] = "PUT"
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    upload_id: str | None = None
    part_size: int | None = None
    parts: list[UploadPart] = Field(default_factory=list)
    complete_url: str | None = None
    abort_url: str | None = None
    expires_in: int = 3600


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer: ``{"error": {"code", "message", "field"}}``."""

    error: ErrorDetail

    @classmethod
    def of(cls, exc: VsrError) -> ErrorBody:
        # A message may quote request text: a lone surrogate in it could not be encoded as JSON.
        field = _printable(exc.field) if exc.field is not None else None
        return cls(error=ErrorDetail(code=exc.code.value, message=_printable(exc.message), field=field))


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
