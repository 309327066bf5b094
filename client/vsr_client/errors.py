"""The SDK's exceptions: each carries the API's error code, message, field and HTTP status."""

from __future__ import annotations

from vsr_client.api_models import JobStatus
from vsr_client.contract import ERROR_EXIT_CODES, ErrorCode, ExitCode


class VsrApiError(Exception):
    """An error answer from the API (``{"error": {"code", "message", "field"}}``)."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(f"[{code}] {message}")
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    @property
    def exit_code(self) -> int:
        """The process exit code ``vsr`` ends with: the contract's table for the API's codes,
        else by what the HTTP status means (unreachable, 5xx -> 69; 401/403 -> 77; 429 -> 75)."""
        try:
            return int(ERROR_EXIT_CODES[ErrorCode(self.code)])
        except (ValueError, KeyError):
            pass
        if self.status == 0 or self.status >= 500:
            return int(ExitCode.UNAVAILABLE)
        if self.status in (401, 403):
            return int(ExitCode.NO_PERMISSION)
        if self.status == 429:
            return int(ExitCode.TEMPFAIL)
        if self.status == 404:
            return int(ExitCode.NO_INPUT)
        if self.status == 409:
            return int(ExitCode.FAILURE)
        return int(ExitCode.USAGE if self.status >= 400 else ExitCode.FAILURE)


class BadRequest(VsrApiError):
    """400/413/415/422: the request or its input video is invalid; retrying will not help."""


class Unauthorized(VsrApiError):
    """401/403: missing or wrong API key, or a key outside the allowed prefix."""


class NotFound(VsrApiError):
    """404: no such job, object or route."""


class Conflict(VsrApiError):
    """409: idempotency key reused with other parameters, or a job that can no longer be cancelled."""


class Throttled(VsrApiError):
    """429 after every retry."""


class ServerError(VsrApiError):
    """5xx after every retry (``submit_failed``: nothing was left running)."""


class TransportError(VsrApiError):
    """The API could not be reached (after every retry)."""


class JobFailed(Exception):
    """``wait`` saw the job end as failed or cancelled."""

    def __init__(self, status: JobStatus) -> None:
        super().__init__(f"job {status.job_id} {status.state}: {status.failure_reason or 'no reason given'}")
        self.status = status


def error_class(status: int) -> type[VsrApiError]:
    if status in (401, 403):
        return Unauthorized
    if status == 404:
        return NotFound
    if status == 409:
        return Conflict
    if status == 429:
        return Throttled
    if status >= 500:
        return ServerError
    return BadRequest
