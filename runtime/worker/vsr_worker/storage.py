"""Job files addressed by URI: local paths (or ``file://``) and ``s3://bucket/key``.

Stages never know where they run: they read and write URIs through these functions.
Writes are all-or-nothing: a local file is written under a temporary name and renamed; an
S3 object is uploaded from a local temporary file only once it is complete (a PUT or a
completed multipart upload is atomic). Transfers use s3transfer (multipart, parallel,
retried), with credentials from the default chain (the Batch job role in the cloud).

Failures become the contract's errors here: an S3 call that still fails after botocore's
retries is ``storage_error`` (exit 75: Batch tries the stage again), a full disk while a
file is written is ``no_space`` naming the directory (vsr_worker.errors).
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator, Optional, Tuple

from vsr_client.codes import MEDIA_TYPES, ErrorCode, VsrError
from vsr_worker import errors

_S3 = "s3://"
# Attempts per S3 request (the first included): botocore retries 5xx, throttling and dropped
# connections with backoff, adaptive mode also slows its own send rate when throttled.
# AWS_MAX_ATTEMPTS, the AWS SDKs' own variable, overrides it.
S3_MAX_ATTEMPTS = 11
_client_lock = threading.Lock()
_client: Any = None


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def is_s3(uri: str) -> bool:
    return uri.startswith(_S3)


def split_s3(uri: str) -> Tuple[str, str]:
    bucket, _, key = uri[len(_S3) :].partition("/")
    if not bucket or not key:
        raise VsrError(ErrorCode.INVALID_ARGUMENT, f"not an s3://bucket/key URI: {uri!r}")
    return bucket, key


def local_path(uri: str) -> Path:
    if not is_local(uri):
        raise VsrError(ErrorCode.INVALID_ARGUMENT, f"not a local path: {uri!r}")
    return Path(uri[len("file://") :] if uri.startswith("file://") else uri)


def _check_scheme(uri: str) -> None:
    if not (is_local(uri) or is_s3(uri)):
        raise VsrError(ErrorCode.INVALID_ARGUMENT, f"unsupported URI scheme (use a path or s3://): {uri!r}")


def s3_client() -> Any:
    """One boto3 S3 client per process (thread-safe to share), created on first use."""
    global _client
    with _client_lock:
        if _client is None:
            import boto3
            from botocore.config import Config

            _client = boto3.client(
                "s3",
                endpoint_url=os.environ.get("VSR_S3_ENDPOINT_URL") or None,
                config=Config(
                    retries={"total_max_attempts": s3_max_attempts(), "mode": "adaptive"}, max_pool_connections=32
                ),
            )
        return _client


def s3_max_attempts() -> int:
    value = os.environ.get("AWS_MAX_ATTEMPTS", "")
    return max(1, int(value)) if value.isdigit() else S3_MAX_ATTEMPTS


@contextlib.contextmanager
def _s3_call(op: str, uri: str) -> Iterator[None]:
    """An S3 operation: a failure left after botocore's retries becomes ``storage_error``."""
    try:
        yield
    except VsrError:
        raise
    except Exception as exc:
        if _is_missing(exc) or not errors.is_storage_failure(exc):
            raise
        raise errors.storage_error(op, uri, exc) from None


@contextlib.contextmanager
def _disk_writes(directory: str) -> Iterator[None]:
    """Local writes under ``directory``: a full disk becomes ``no_space`` naming it."""
    try:
        yield
    except OSError as exc:
        if not errors.is_no_space(exc):
            raise
        raise errors.no_space(directory, exc) from None


def reset_s3_client() -> None:
    """Forget the cached client (tests that start a new fake S3 call this)."""
    global _client
    with _client_lock:
        _client = None


def _transfer_config() -> Any:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=16 * 2**20, multipart_chunksize=16 * 2**20, max_concurrency=8)


def _is_missing(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    return code in ("404", "NoSuchKey", "NotFound")


def join(prefix: str, *parts: str) -> str:
    """Join URI parts with '/' (also for local paths, which stay valid on POSIX)."""
    return "/".join([prefix.rstrip("/"), *(p.strip("/") for p in parts)])


def with_suffix(uri: str, suffix: str) -> str:
    """``uri`` with its last component's extension replaced (bucket names may hold dots)."""
    head, sep, name = uri.rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    return f"{head}{sep}{stem}{suffix}"


def exists(uri: str) -> bool:
    _check_scheme(uri)
    if is_local(uri):
        return local_path(uri).exists()
    bucket, key = split_s3(uri)
    try:
        with _s3_call("HeadObject", uri):
            s3_client().head_object(Bucket=bucket, Key=key)
        return True
    except Exception as exc:
        if _is_missing(exc):
            return False
        raise


def read_bytes(uri: str) -> bytes:
    _check_scheme(uri)
    if is_local(uri):
        return local_path(uri).read_bytes()
    bucket, key = split_s3(uri)
    try:
        with _s3_call("GetObject", uri):
            return s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:
        if _is_missing(exc):
            raise FileNotFoundError(uri) from None
        raise


def read_json(uri: str) -> Any:
    return json.loads(read_bytes(uri))


def write_bytes(uri: str, data: bytes) -> None:
    _check_scheme(uri)
    if is_s3(uri):
        bucket, key = split_s3(uri)
        with _s3_call("PutObject", uri):
            s3_client().put_object(Bucket=bucket, Key=key, Body=data)
        return
    with output_file(uri) as tmp:
        tmp.write_bytes(data)


def write_json(uri: str, data: Any) -> None:
    write_bytes(uri, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def _scratch_dir() -> str:
    """Where downloads and pending uploads live (VSR_SCRATCH_DIR, else the system temp dir)."""
    path = os.environ.get("VSR_SCRATCH_DIR") or tempfile.gettempdir()
    os.makedirs(path, exist_ok=True)
    return path


def without_scratch_paths(text: str) -> str:
    """``text`` with this host's temporary download/upload paths cut to the object's name:
    for messages shown to users, who know their file but not the worker's disk."""
    scratch = re.escape(os.path.join(_scratch_dir(), ""))
    return re.sub(scratch + r"vsr-(?:in|out)-[^/\s]+/", "", text)


@contextlib.contextmanager
def input_file(uri: str) -> Iterator[Path]:
    """A local path holding the object at ``uri`` for the duration of the block."""
    _check_scheme(uri)
    if is_local(uri):
        path = local_path(uri)
        if not path.exists():
            raise VsrError(ErrorCode.INPUT_NOT_FOUND, f"input not found: {uri}")
        yield path
        return
    bucket, key = split_s3(uri)
    scratch = _scratch_dir()
    with _disk_writes(scratch):
        tmpdir = tempfile.mkdtemp(prefix="vsr-in-", dir=scratch)
    path = Path(tmpdir) / (Path(key).name or "object")
    try:
        try:
            with _disk_writes(scratch), _s3_call("download of", uri):
                s3_client().download_file(bucket, key, str(path), Config=_transfer_config())
        except Exception as exc:
            if _is_missing(exc):
                raise VsrError(ErrorCode.INPUT_NOT_FOUND, f"input not found: {uri}") from None
            raise
        yield path
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


@contextlib.contextmanager
def output_file(uri: str, suffix: str = "") -> Iterator[Path]:
    """A temporary local path that becomes ``uri`` only if the block succeeds.

    Locally the temp file sits beside the target so the final rename is atomic; for S3 it
    is uploaded when the block ends. On failure nothing is written and the temp file goes.

    The local temp name is reserved with mkstemp and then unlinked, so the writer (FFmpeg,
    ``open(..., "wb")``) creates the file rather than truncating an existing one: on ext4
    (``auto_da_alloc``, the default) truncating a file to zero marks it for write-back on
    close, and the close of a 1 GB output then waited ~0.4 s to start writing it all out.
    """
    _check_scheme(uri)
    if is_s3(uri):
        bucket, key = split_s3(uri)
        scratch = _scratch_dir()
        with _disk_writes(scratch):
            tmpdir = tempfile.mkdtemp(prefix="vsr-out-", dir=scratch)
        tmp = Path(tmpdir) / (Path(key).name or "object")
        try:
            with _disk_writes(scratch):
                yield tmp
                errors.inject_no_space(uri)
            # A browser plays and seeks what S3 labels a video (the presigned download keeps it).
            media_type = MEDIA_TYPES.get(posixpath.splitext(key)[1].lower())
            extra = {"ContentType": media_type} if media_type else None
            with _s3_call("upload to", uri):
                s3_client().upload_file(str(tmp), bucket, key, ExtraArgs=extra, Config=_transfer_config())
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
        return
    dest = local_path(uri)
    with _disk_writes(str(dest.parent)):
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{dest.name}.", suffix=".tmp" + (suffix or dest.suffix), dir=dest.parent
        )
        os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # the name stays ours (random, in the service's own folder); see above
    try:
        with _disk_writes(str(dest.parent)):
            yield tmp
            errors.inject_no_space(uri)
            if not tmp.exists():  # the block wrote nothing: an empty object, as before
                tmp.touch()
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def list_prefix(uri: str) -> list:
    """Every object/file under a prefix, as URIs."""
    _check_scheme(uri)
    if is_local(uri):
        root = local_path(uri)
        return sorted(str(p) for p in root.rglob("*") if p.is_file()) if root.exists() else []
    bucket, prefix = split_s3(uri.rstrip("/") + "/")
    out = []
    with _s3_call("ListObjectsV2", uri):
        for page in s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out.extend(f"{_S3}{bucket}/{obj['Key']}" for obj in page.get("Contents", []))
    return out


def remove(uri: str) -> None:
    """Delete one object or file (gone already is fine)."""
    _check_scheme(uri)
    if is_local(uri):
        local_path(uri).unlink(missing_ok=True)
        return
    bucket, key = split_s3(uri)
    with _s3_call("DeleteObject", uri):
        s3_client().delete_object(Bucket=bucket, Key=key)


def remove_tree(uri: str, keep: Optional[list] = None) -> None:
    """Delete everything under a prefix (except the URIs in ``keep``)."""
    _check_scheme(uri)
    keep_set = set(keep or [])
    if is_local(uri):
        if not keep_set:
            shutil.rmtree(local_path(uri), ignore_errors=True)
            return
        for item in list_prefix(uri):
            if item not in keep_set:
                Path(item).unlink(missing_ok=True)
        return
    doomed = [u for u in list_prefix(uri) if u not in keep_set]
    for start in range(0, len(doomed), 1000):
        bucket = split_s3(doomed[start])[0]
        objects = [{"Key": split_s3(u)[1]} for u in doomed[start : start + 1000]]
        with _s3_call("DeleteObjects", uri):
            s3_client().delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
