"""Client SDK and the API contract of the video super-resolution service.

The contract (request models, segment planning, error codes, the job manifest and the
job graph) lives here once and is shared by the Lambda, the local server, the worker and
the SDK.
"""

from vsr_client.contract import (
    ErrorCode,
    ExitCode,
    Manifest,
    SegmentPlan,
    plan_segments,
)

__all__ = ["ErrorCode", "ExitCode", "Manifest", "SegmentPlan", "plan_segments"]
