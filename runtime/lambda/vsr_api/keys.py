"""Object-key rules: what a caller may name, and where each job's files go.

Every key a request names is checked here before anything touches storage, so a bad one is a
4xx with a code, never an exception in an adapter: valid UTF-8 (a lone surrogate such as
``"\\ud800"`` survives JSON decoding but no file system or S3 takes it), S3's 1024 bytes in
all, 255 bytes per path segment (the local file systems' limit), no control characters,
backslashes, ``.``/``..`` or empty segments.

Ownership of results: every output lies under the output prefix. A job's default output is
``<output prefix><job id>/...``, a folder no request may name (``key_reserved``); a requested
``output_key`` is claimed by its job in the job store, so no two jobs write one result, and
the service refuses one that names an existing object (``output_exists``).
"""

from __future__ import annotations

import posixpath
import re
import secrets
import time

from vsr_client.contract import OUTPUT_FORMATS, ErrorCode, VsrError, output_container

MAX_KEY_BYTES = 1024  # S3's limit for a whole key
MAX_SEGMENT_BYTES = 255  # NAME_MAX of ext4, xfs, btrfs, APFS: one path segment
OUTPUT_SUFFIXES = tuple(OUTPUT_FORMATS)  # the containers a result may be written in
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_JOB_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{8}")


def new_job_id() -> str:
    """``YYYYmmddTHHMMSSZ-<8 hex>``: sortable by time, unguessable enough to be a folder name."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(4)


def is_job_id(name: str) -> bool:
    return _JOB_ID.fullmatch(name) is not None


def _check_shape(key: str, field: str, code: ErrorCode) -> None:
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        raise VsrError(code, f"{field} is not valid UTF-8 (it holds a lone surrogate)", field) from None
    if len(encoded) > MAX_KEY_BYTES:
        raise VsrError(code, f"{field} is {len(encoded)} bytes long; the limit is {MAX_KEY_BYTES}", field)
    if _CONTROL.search(key) or "\\" in key:
        raise VsrError(code, f"{field} holds control characters or backslashes", field)
    if "://" in key or key.startswith("/"):
        raise VsrError(code, f"{field} must be an object key in this bucket, not a URI or absolute path", field)
    parts = key.split("/")
    if any(part in ("..", ".") for part in parts) or "//" in key:
        raise VsrError(code, f"{field} must not contain '.', '..' or empty path segments", field)
    longest = max(len(part.encode()) for part in parts)
    if longest > MAX_SEGMENT_BYTES:
        raise VsrError(
            code, f"{field} has a path segment of {longest} bytes; the limit is {MAX_SEGMENT_BYTES} per segment", field
        )


def check_text(value: str, field: str, code: ErrorCode = ErrorCode.INVALID_ARGUMENT) -> str:
    """A free-text request field that ends up in a header, a file name or a hash: valid UTF-8,
    no control characters."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise VsrError(code, f"{field} is not valid UTF-8 (it holds a lone surrogate)", field) from None
    if _CONTROL.search(value):
        raise VsrError(code, f"{field} holds control characters", field)
    return value


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
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")[:MAX_SEGMENT_BYTES] or "video.mp4"
    return source_key(f"{input_prefix}{job_hint}/{name}", reserved_prefixes)


def output_key(requested: str | None, source: str, job_id: str, scale: int, output_prefix: str) -> str:
    """The result's key: ``requested`` (under the output prefix) or one derived from the source."""
    if requested:
        _check_shape(requested, "output_key", ErrorCode.INVALID_OUTPUT_KEY)
        key = requested if requested.startswith(output_prefix) else output_prefix + requested
        output_container(key, "output_key", ErrorCode.INVALID_OUTPUT_KEY)
        folder = key[len(output_prefix) :].split("/", 1)
        if len(folder) > 1 and is_job_id(folder[0]):
            raise VsrError(
                ErrorCode.KEY_RESERVED,
                f"output_key lies in {output_prefix}{folder[0]}/, the folder of job {folder[0]}'s results; "
                "name a key outside the job folders",
                "output_key",
            )
        return key
    stem = posixpath.splitext(posixpath.basename(source))[0] or "video"
    return f"{output_prefix}{job_id}/{stem}_x{scale}.mp4"


def output_claim(key: str) -> str:
    """What a job claims for a requested output: the key without its container suffix, since
    merge may write ``.mkv`` where ``.mp4`` cannot hold a source stream."""
    return posixpath.splitext(key)[0]


def output_variants(key: str) -> list[str]:
    """Every key the result of ``key`` may be written at (one per container)."""
    stem = output_claim(key)
    return [key, *(stem + suffix for suffix in OUTPUT_SUFFIXES if stem + suffix != key)]


def work_prefix(job_id: str, prefix: str) -> str:
    return f"{prefix}{job_id}"


def manifest_key(job_id: str, prefix: str) -> str:
    return f"{work_prefix(job_id, prefix)}/manifest.json"
