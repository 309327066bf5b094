"""Client SDK and the API contract of the video super-resolution service.

The contract (request models, segment planning, error codes, the job manifest and the
job graph) lives here once and is shared by the Lambda, the local server, the worker and
the SDK. The names below are loaded on first use, so that importing a pydantic-free module
of this package (``vsr_client.codes``, ``vsr_client.manifest_view``) does not import pydantic.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ErrorCode", "ExitCode", "Manifest", "SegmentPlan", "plan_segments"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from vsr_client import contract

        return getattr(contract, name)
    raise AttributeError(f"module 'vsr_client' has no attribute {name!r}")
