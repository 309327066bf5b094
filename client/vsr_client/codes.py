"""Error codes, exit codes, ``VsrError`` and the contract's defaults: the part of the
contract that needs no pydantic.

The worker's split and merge stages import only this (and the light manifest reader,
:mod:`vsr_client.manifest_view`): importing pydantic and building the models costs a process
about a tenth of a second, as long as remuxing a hundred megabytes. :mod:`vsr_client.contract`
re-exports every name. Keep it importable on Python 3.10 with the standard library only.
"""

from __future__ import annotations

from enum import Enum, IntEnum
from typing import Optional

SCALES = (2, 4)
DEFAULT_SEGMENT_TIME = 60.0
# A learned model by default: Real-ESRGAN's video model (fast, 0.6M parameters). "bicubic"
# stays available by name as the interpolation baseline.
DEFAULT_MODEL = "realesr-animevideov3"
DEFAULT_DEVICE = "auto"
MANIFEST_VERSION = 1


class ErrorCode(str, Enum):
    """Machine-readable error codes shared by the API, the CLI and the worker."""

    INPUT_NOT_FOUND = "input_not_found"
    EMPTY_INPUT = "empty_input"
    NOT_A_VIDEO = "not_a_video"
    AUDIO_ONLY = "audio_only"
    CORRUPT_INPUT = "corrupt_input"
    UNSUPPORTED_CODEC = "unsupported_codec"
    INVALID_SCALE = "invalid_scale"
    INVALID_SEGMENT_TIME = "invalid_segment_time"
    INVALID_MODEL = "invalid_model"
    INVALID_ARGUMENT = "invalid_argument"
    INVALID_MANIFEST = "invalid_manifest"
    OUTPUT_EXISTS = "output_exists"
    STAGE_FAILED = "stage_failed"
    DEVICE_UNAVAILABLE = "device_unavailable"
    INTERNAL = "internal_error"
    # Codes of the HTTP API (request validation, jobs, transport).
    MISSING_KEY = "missing_key"
    INVALID_KEY = "invalid_key"
    KEY_RESERVED = "key_reserved"
    INPUT_TOO_LARGE = "input_too_large"
    INPUT_TOO_LONG = "input_too_long"
    INVALID_ENV = "invalid_env"
    INVALID_TASK = "invalid_task"
    INVALID_OUTPUT_KEY = "invalid_output_key"
    UNKNOWN_FIELD = "unknown_field"
    INVALID_JSON = "invalid_json"
    BODY_TOO_LARGE = "body_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    UNAUTHORIZED = "unauthorized"
    JOB_NOT_FOUND = "job_not_found"
    ROUTE_NOT_FOUND = "route_not_found"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    JOB_NOT_CANCELLABLE = "job_not_cancellable"
    THROTTLED = "throttled"
    SUBMIT_FAILED = "submit_failed"


class ExitCode(IntEnum):
    """Process exit codes of the worker (sysexits.h values).

    Batch job definitions retry on host termination but exit at once on the bad-input
    codes (``USAGE``, ``DATA``, ``NO_INPUT``): retrying cannot fix the input.
    """

    OK = 0
    FAILURE = 1
    USAGE = 64
    DATA = 65
    NO_INPUT = 66
    UNAVAILABLE = 69
    SOFTWARE = 70


BAD_INPUT_EXIT_CODES = (ExitCode.USAGE, ExitCode.DATA, ExitCode.NO_INPUT)

ERROR_EXIT_CODES: dict[ErrorCode, ExitCode] = {
    ErrorCode.INPUT_NOT_FOUND: ExitCode.NO_INPUT,
    ErrorCode.EMPTY_INPUT: ExitCode.DATA,
    ErrorCode.NOT_A_VIDEO: ExitCode.DATA,
    ErrorCode.AUDIO_ONLY: ExitCode.DATA,
    ErrorCode.CORRUPT_INPUT: ExitCode.DATA,
    ErrorCode.UNSUPPORTED_CODEC: ExitCode.DATA,
    ErrorCode.INVALID_SCALE: ExitCode.USAGE,
    ErrorCode.INVALID_SEGMENT_TIME: ExitCode.USAGE,
    ErrorCode.INVALID_MODEL: ExitCode.USAGE,
    ErrorCode.INVALID_ARGUMENT: ExitCode.USAGE,
    ErrorCode.INVALID_MANIFEST: ExitCode.USAGE,
    ErrorCode.OUTPUT_EXISTS: ExitCode.USAGE,
    ErrorCode.STAGE_FAILED: ExitCode.FAILURE,
    ErrorCode.DEVICE_UNAVAILABLE: ExitCode.UNAVAILABLE,
    ErrorCode.INTERNAL: ExitCode.SOFTWARE,
}


class VsrError(Exception):
    """An error a user can act on: a code, a one-line message, optionally the field at fault."""

    def __init__(self, code: ErrorCode, message: str, field: Optional[str] = None) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)
        self.message = message
        self.field = field

    @property
    def exit_code(self) -> int:
        return int(ERROR_EXIT_CODES.get(self.code, ExitCode.FAILURE))

    def __str__(self) -> str:
        return f"[{self.code.value}] {self.message}"
