"""Client SDK and the API contract of the video super-resolution service.

    from vsr_client import Client, JobFailed
    client = Client("http://127.0.0.1:8080")          # or $VSR_API_URL / $VSR_API_KEY
    job = client.submit(client.upload("clip.mp4"), scale=4)
    client.wait(job.job_id)
    client.download(job.job_id, "clip_x4.mp4")

The contract (request models, segment planning, error codes, the job manifest and the
job graph) lives here once and is shared by the Lambda, the local server, the worker and
the SDK. The SDK's names are imported on first use: a worker stage that only needs the
contract does not pay for importing ``requests``.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from vsr_client.contract import (
    ErrorCode,
    ExitCode,
    Manifest,
    SegmentPlan,
    plan_segments,
)

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

try:
    __version__ = version("vsr-client")
except PackageNotFoundError:  # a source tree on sys.path, not installed
    __version__ = "0+unknown"

# name -> module, for the names imported on first use (PEP 562).
_LAZY = {
    "Client": "vsr_client.client",
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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vsr_client' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
