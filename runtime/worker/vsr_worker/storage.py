"""Job files addressed by URI.

Stages never know where they run: they read and write URIs. Plain paths (and ``file://``
URIs) are local; object-store URIs are handled by the cloud I/O layer.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from vsr_client.contract import ErrorCode, VsrError


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def local_path(uri: str) -> Path:
    if not is_local(uri):
        raise VsrError(ErrorCode.INVALID_ARGUMENT, f"only local paths are supported here, got {uri!r}")
    return Path(uri[len("file://") :] if uri.startswith("file://") else uri)


def join(prefix: str, *parts: str) -> str:
    """Join URI parts with '/' (also for local paths, which stay valid on POSIX)."""
    return "/".join([prefix.rstrip("/"), *(p.strip("/") for p in parts)])


def exists(uri: str) -> bool:
    return local_path(uri).exists()


def read_bytes(uri: str) -> bytes:
    return local_path(uri).read_bytes()


def read_json(uri: str) -> Any:
    return json.loads(read_bytes(uri))


def write_bytes(uri: str, data: bytes) -> None:
    with output_file(uri) as tmp:
        tmp.write_bytes(data)


def write_json(uri: str, data: Any) -> None:
    write_bytes(uri, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


@contextlib.contextmanager
def input_file(uri: str) -> Iterator[Path]:
    """A local path holding the object at ``uri`` for the duration of the block."""
    path = local_path(uri)
    if not path.exists():
        raise VsrError(ErrorCode.INPUT_NOT_FOUND, f"input not found: {uri}")
    yield path


@contextlib.contextmanager
def output_file(uri: str, suffix: str = "") -> Iterator[Path]:
    """A temporary local path that becomes ``uri`` only if the block succeeds.

    The temp file sits beside the target so the final rename is atomic; on failure it is
    removed and the target is left as it was.
    """
    dest = local_path(uri)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp" + (suffix or dest.suffix), dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual mode
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_tree(uri: str) -> None:
    import shutil

    shutil.rmtree(local_path(uri), ignore_errors=True)
