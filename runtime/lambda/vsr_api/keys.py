"""Object-key rules: what a caller may name, and where each job's files go."""

from __future__ import annotations

import posixpath
import re

from vsr_client.contract import ErrorCode, VsrError, output_container

_MAX_KEY = 1024
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


def source_key(key: str, reserved_prefixes: tuple[str, ...]) -> str:
    """A validated source key: any object key in the bucket (the seed's ``{"key": "clip.mp4"}``
    names an object at the root), except under the service's own prefixes (job work areas and
    results), which belong to other jobs."""
    _check_shape(key, "key", ErrorCode.INVALID_KEY)
    if key.endswith("/"):
        raise VsrError(ErrorCode.INVALID_KEY, "key names a folder, not an object", "key")
    reserved = next((p for p in reserved_prefixes if p and key.startswith(p)), None)
    if reserved is not None:
        raise VsrError(
            ErrorCode.KEY_RESERVED,
            f"key lies under {reserved!r}, which holds the service's own job files; "
            "put sources at the bucket root or under any other prefix",
            "key",
        )
    return key


def upload_key(
    key: str | None, filename: str | None, job_hint: str, input_prefix: str, reserved_prefixes: tuple[str, ...]
) -> str:
    """Where ``POST /uploads`` puts a file: the given key as is, or ``<input prefix><hint>/<filename>``."""
    if key:
        return source_key(key, reserved_prefixes)
    name = posixpath.basename((filename or "video.mp4").replace("\\", "/")) or "video.mp4"
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "video.mp4"
    return source_key(f"{input_prefix}{job_hint}/{name}", reserved_prefixes)


def output_key(requested: str | None, source: str, job_id: str, scale: int, output_prefix: str) -> str:
    """The result's key: ``requested`` (under the output prefix) or one derived from the source."""
    if requested:
        _check_shape(requested, "output_key", ErrorCode.INVALID_OUTPUT_KEY)
        key = requested if requested.startswith(output_prefix) else output_prefix + requested
        output_container(key, "output_key", ErrorCode.INVALID_OUTPUT_KEY)
        return key
    stem = posixpath.splitext(posixpath.basename(source))[0] or "video"
    return f"{output_prefix}{job_id}/{stem}_x{scale}.mp4"


def work_prefix(job_id: str, prefix: str) -> str:
    return f"{prefix}{job_id}"


def manifest_key(job_id: str, prefix: str) -> str:
    return f"{work_prefix(job_id, prefix)}/manifest.json"
