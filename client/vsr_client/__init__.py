"""Client SDK and the API contract of the video super-resolution service.

    from vsr_client import Client, JobFailed
    client = Client("http://127.0.0.1:8080")          # or $VSR_API_URL / $VSR_API_KEY
    job = client.submit(client.upload("clip.mp4"), scale=4)
    client.wait(job.job_id)
    client.download(job.job_id, "clip_x4.mp4")

The contract (request models, segment planning, error codes, the job manifest and the
job graph) lives here once and is shared by the Lambda, the local server, the worker and
the SDK. Every name is imported on first use (PEP 562): a worker stage that needs only a
pydantic-free module of this package (``vsr_client.codes``, ``vsr_client.manifest_view``) pays
for neither pydantic nor ``requests``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vsr_client.api_models import (
        ErrorBody,
        ErrorDetail,
        JobAccepted,
        JobList,
        JobProgress,
        JobStatus,
        StageProgress,
        SubmitRequest,
        UploadPart,
        UploadRequest,
        UploadTarget,
    )
    from vsr_client.client import Client
    from vsr_client.contract import ErrorCode, ExitCode, Manifest, SegmentPlan, plan_segments
    from vsr_client.errors import (
        BadRequest,
        Conflict,
        JobFailed,
        NotFound,
        ServerError,
        Throttled,
        TransportError,
        Unauthorized,
        VsrApiError,
    )

# name -> module, for the names imported on first use (PEP 562).
_LAZY = {
    "Client": "vsr_client.client",
    **dict.fromkeys(("ErrorCode", "ExitCode", "Manifest", "SegmentPlan", "plan_segments"), "vsr_client.contract"),
    **dict.fromkeys(
        (
            "ErrorBody",
            "ErrorDetail",
            "JobAccepted",
            "JobList",
            "JobProgress",
            "JobStatus",
            "StageProgress",
            "SubmitRequest",
            "UploadPart",
            "UploadRequest",
            "UploadTarget",
        ),
        "vsr_client.api_models",
    ),
    **dict.fromkeys(
        (
            "BadRequest",
            "Conflict",
            "JobFailed",
            "NotFound",
            "ServerError",
            "Throttled",
            "TransportError",
            "Unauthorized",
            "VsrApiError",
        ),
        "vsr_client.errors",
    ),
}

# Listed literally: type checkers read __all__ to see the names __getattr__ provides.
__all__ = [
    "BadRequest",
    "Client",
    "Conflict",
    "ErrorBody",
    "ErrorCode",
    "ErrorDetail",
    "ExitCode",
    "JobAccepted",
    "JobFailed",
    "JobList",
    "JobProgress",
    "JobStatus",
    "Manifest",
    "NotFound",
    "SegmentPlan",
    "ServerError",
    "StageProgress",
    "SubmitRequest",
    "Throttled",
    "TransportError",
    "Unauthorized",
    "UploadPart",
    "UploadRequest",
    "UploadTarget",
    "VsrApiError",
    "__version__",
    "plan_segments",
]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vsr-client")
    except PackageNotFoundError:  # a source tree on sys.path, not installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        return _version()
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vsr_client' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
