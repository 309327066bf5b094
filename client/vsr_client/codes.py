"""Error codes, exit codes, ``VsrError`` and the contract's defaults: the part of the
contract that needs no pydantic.

The worker's split and merge stages import only this (and the light manifest reader,
:mod:`vsr_client.manifest_view`): importing pydantic and building the models costs a process
about a tenth of a second, as long as remuxing a hundred megabytes. :mod:`vsr_client.contract`
re-exports every name. Keep it importable on Python 3.10 with the standard library only.
"""

from __future__ import annotations

from enum import Enum, IntEnum
from typing import Literal, Optional

SCALES = (2, 4)
DEFAULT_SEGMENT_TIME = 60.0
# A learned model by default: Real-ESRGAN's video model (fast, 0.6M parameters). "bicubic"
# stays available by name as the interpolation baseline.
DEFAULT_MODEL = "realesr-animevideov3"
DEFAULT_DEVICE = "auto"
MANIFEST_VERSION: Literal[1] = 1
# The output file's extension decides its container (the worker's merge, the API's output_key,
# `vsr-worker run -o` and `vsr upscale -o`); anything else is refused rather than mislabelled.
OUTPUT_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}
# The Content-Type of each container, for downloads a browser can play (IANA's video/mp4 and
# video/quicktime; Matroska's own video/x-matroska).
MEDIA_TYPES = {".mp4": "video/mp4", ".mov": "video/quicktime", ".mkv": "video/x-matroska"}


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
    ENGINE_UNAVAILABLE = "engine_unavailable"  # `vsr upscale` with no URL and no vsr-worker installed
    INTERNAL = "internal_error"
    # Failures of the worker's environment and of its own intermediates.
    NO_SPACE = "no_space"
    CORRUPT_INTERMEDIATE = "corrupt_intermediate"
    STORAGE_ERROR = "storage_error"
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
    HOST_NOT_ALLOWED = "host_not_allowed"  # local server without an API key: a Host that is not loopback
    JOB_NOT_FOUND = "job_not_found"
    ROUTE_NOT_FOUND = "route_not_found"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    JOB_NOT_CANCELLABLE = "job_not_cancellable"
    THROTTLED = "throttled"
    SUBMIT_FAILED = "submit_failed"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    REQUEST_TIMEOUT = "request_timeout"
    TOO_MANY_SEGMENTS = "too_many_segments"
    RANGE_NOT_SATISFIABLE = "range_not_satisfiable"  # a download's Range starts past the object's end


class ExitCode(IntEnum):
    """Process exit codes of ``vsr-worker`` and ``vsr`` alike (sysexits.h values).

    Which of them Batch retries is vsr_client.retry_matrix: never the bad-input codes
    (``USAGE``, ``DATA``, ``NO_INPUT``), always ``TEMPFAIL``, the internal ones once.
    """

    OK = 0
    FAILURE = 1
    USAGE = 64
    DATA = 65
    NO_INPUT = 66
    UNAVAILABLE = 69
    SOFTWARE = 70
    CANTCREAT = 73  # an output cannot be created: the disk is full
    IOERR = 74  # an intermediate read back is not what was stored
    TEMPFAIL = 75  # temporary failure (storage after its retries): try again later
    NO_PERMISSION = 77
    BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a tool whose reader left (`| head`)


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
    ErrorCode.ENGINE_UNAVAILABLE: ExitCode.UNAVAILABLE,
    ErrorCode.INTERNAL: ExitCode.SOFTWARE,
    ErrorCode.NO_SPACE: ExitCode.CANTCREAT,
    ErrorCode.CORRUPT_INTERMEDIATE: ExitCode.IOERR,
    ErrorCode.STORAGE_ERROR: ExitCode.TEMPFAIL,
    # The HTTP API's codes, as `vsr` exits on them: the same meanings as the worker's.
    ErrorCode.MISSING_KEY: ExitCode.USAGE,
    ErrorCode.INVALID_KEY: ExitCode.USAGE,
    ErrorCode.KEY_RESERVED: ExitCode.USAGE,
    ErrorCode.INVALID_ENV: ExitCode.USAGE,
    ErrorCode.INVALID_TASK: ExitCode.USAGE,
    ErrorCode.INVALID_OUTPUT_KEY: ExitCode.USAGE,
    ErrorCode.UNKNOWN_FIELD: ExitCode.USAGE,
    ErrorCode.INVALID_JSON: ExitCode.USAGE,
    ErrorCode.BODY_TOO_LARGE: ExitCode.USAGE,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: ExitCode.USAGE,
    ErrorCode.ROUTE_NOT_FOUND: ExitCode.USAGE,
    ErrorCode.METHOD_NOT_ALLOWED: ExitCode.USAGE,
    ErrorCode.IDEMPOTENCY_CONFLICT: ExitCode.USAGE,
    ErrorCode.TOO_MANY_SEGMENTS: ExitCode.USAGE,  # a longer segment_time fits the video
    ErrorCode.RANGE_NOT_SATISFIABLE: ExitCode.USAGE,
    ErrorCode.INPUT_TOO_LARGE: ExitCode.DATA,
    ErrorCode.INPUT_TOO_LONG: ExitCode.DATA,
    ErrorCode.JOB_NOT_FOUND: ExitCode.NO_INPUT,
    ErrorCode.JOB_NOT_CANCELLABLE: ExitCode.FAILURE,
    ErrorCode.UNAUTHORIZED: ExitCode.NO_PERMISSION,
    ErrorCode.HOST_NOT_ALLOWED: ExitCode.NO_PERMISSION,
    ErrorCode.THROTTLED: ExitCode.TEMPFAIL,
    ErrorCode.REQUEST_TIMEOUT: ExitCode.TEMPFAIL,  # the request reached the server too slowly: send it again
    ErrorCode.SUBMIT_FAILED: ExitCode.UNAVAILABLE,
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
