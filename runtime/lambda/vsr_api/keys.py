"""Object-key rules: what a caller may name, and where each job's files go."""

from __future__ import annotations

import posixpath
import re

from vsr_client.contract import ErrorCode, VsrError

_MAX_KEY = 1024
_OUTPUT_SUFFIXES = (".mp4", ".mov", ".mkv")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _check_shape(key: str, field: str, code: ErrorCode) -> None:
    if len(key.encode()) > _MAX_KEY:
        raise VsrError(code, f"{field} is longer than {_MAX_KEY} bytes", field)
    if _CONTROL.search(key) or "\\" in key:
        raise VsrError(code, f"{field} holds control characters or backslashes", field)
    if "://" in key or key.startswith("/"):
        raise VsrError(code, f"{field} must be an object key in this bucket, not a URI or absolute path", field)
    if any(part in ("..", ".") for part in key.split("/")) or "//" in key:
        raise VsrError(code, f"{field} must not contain '.', '..' or empty path segments", field)


def source_key(key: str, input_prefix: str) -> str:
    """A validated source key; it must lie under ``input_prefix``."""
    _check_shape(key, "key", ErrorCode.INVALID_KEY)
    if key.endswith("/"):
        raise VsrError(ErrorCode.INVALID_KEY, "key names a folder, not an object", "key")
    if input_prefix and not key.startswith(input_prefix):
        raise VsrError(ErrorCode.KEY_OUTSIDE_PREFIX, f"key must lie under {input_prefix!r}, got {key!r}", "key")
    return key


def upload_key(key: str | None, filename: str | None, job_hint: str, input_prefix: str) -> str:
    """Where ``POST /uploads`` puts a file: the given key, or ``<prefix><hint>/<filename>``."""
    if key:
        if input_prefix and not key.startswith(input_prefix):
            key = input_prefix + key
        return source_key(key, input_prefix)
    name = posixpath.basename((filename or "video.mp4").replace("\\", "/")) or "video.mp4"
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "video.mp4"
    return source_key(f"{input_prefix}{job_hint}/{name}", input_prefix)


def output_key(requested: str | None, source: str, job_id: str, scale: int, output_prefix: str) -> str:
    """The result's key: ``requested`` (under the output prefix) or one derived from the source."""
    if requested:
        _check_shape(requested, "output_key", ErrorCode.INVALID_OUTPUT_KEY)
        key = requested if requested.startswith(output_prefix) else output_prefix + requested
        if not key.lower().endswith(_OUTPUT_SUFFIXES):
            raise VsrError(
                ErrorCode.INVALID_OUTPUT_KEY,
                f"output_key must end with one of {', '.join(_OUTPUT_SUFFIXES)}",
                "output_key",
            )
        return key
    stem = posixpath.splitext(posixpath.basename(source))[0] or "video"
    return f"{output_prefix}{job_id}/{stem}_x{scale}.mp4"


def work_prefix(job_id: str, prefix: str) -> str:
    return f"{prefix}{job_id}"


def manifest_key(job_id: str, prefix: str) -> str:
    return f"{work_prefix(job_id, prefix)}/manifest.json"
