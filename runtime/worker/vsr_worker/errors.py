"""Every worker failure as one line: an error code from the contract and a message.

Stages raise VsrError where they know what went wrong. What else escapes is classified here,
so the CLI prints ``vsr-worker: error [code]: message`` and never a traceback for a failure
of the worker's surroundings: a full disk (``no_space``, naming the directory), storage that
still fails after its retries (``storage_error``), a damaged JSON record (``corrupt_intermediate``).
Anything left is a bug (``internal_error``), reported with its type and where it was raised.

Fault injection for tests (no root, no small file system needed): ``VSR_FAULT_ENOSPC=TEXT``
makes every stored file whose URI contains TEXT fail as a full disk would, at the moment the
file is complete and about to be renamed or uploaded into place.
"""

from __future__ import annotations

import errno
import json
import os
import traceback
from pathlib import Path
from typing import Iterable

from vsr_client.codes import ErrorCode, VsrError

FAULT_ENOSPC_ENV = "VSR_FAULT_ENOSPC"

# ENOSPC: the file system is full; EDQUOT: the user's quota is; EFBIG: the file is larger than
# the file system or the process (RLIMIT_FSIZE) allows. The remedy is the same: more room.
_NO_SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_STORAGE_MODULES = ("botocore", "boto3", "s3transfer", "urllib3")
_PACKAGES = {"vsr_worker", "vsr_client"}  # where a bug's place is worth naming


def is_no_space(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _NO_SPACE_ERRNOS


def _existing_dir(path: str) -> str:
    """The nearest directory of ``path`` that still exists (temp directories are gone by now)."""
    p = Path(path)
    for candidate in (p, *p.parents):
        if candidate.is_dir():
            return str(candidate)
    return str(p)


def no_space(directory: str, exc: OSError) -> VsrError:
    what = "file size limit reached" if exc.errno == errno.EFBIG else os.strerror(exc.errno or errno.ENOSPC).lower()
    return VsrError(ErrorCode.NO_SPACE, f"{what} writing under {_existing_dir(directory)}")


def inject_no_space(uri: str) -> None:
    """Fail like a full disk when ``$VSR_FAULT_ENOSPC`` names part of ``uri`` (tests only).

    As ``write()`` does: an OSError without a file name (``open()`` would give one)."""
    needle = os.environ.get(FAULT_ENOSPC_ENV)
    if needle and needle in uri:
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} ({FAULT_ENOSPC_ENV})")


def is_storage_failure(exc: BaseException) -> bool:
    """An exception of the AWS SDK or its transfer manager (they arrive after botocore's retries)."""
    return type(exc).__module__.split(".", 1)[0] in _STORAGE_MODULES


def storage_error(op: str, uri: str, exc: BaseException) -> VsrError:
    """``storage_error`` for an S3 call that failed after botocore's retries.

    The transfer manager wraps S3's answer in its own exception (whose text names the local
    temp file): the message is taken from S3's answer, found down the exception's chain.
    """
    cause: "BaseException | None" = exc
    while cause is not None and not getattr(cause, "response", None):
        cause = cause.__cause__ or cause.__context__
    exc = cause or exc
    response = getattr(exc, "response", None) or {}
    error = response.get("Error", {})
    retries = response.get("ResponseMetadata", {}).get("RetryAttempts")
    if error:
        detail = f"{error.get('Code', 'error')}: {error.get('Message') or 'no message'}"
    else:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    after = f" after {retries + 1} attempts" if isinstance(retries, int) else ""
    where = f"{op} {uri}" if uri else op
    return VsrError(ErrorCode.STORAGE_ERROR, f"{where} failed{after}: {detail}")


def corrupt(message: str) -> VsrError:
    return VsrError(ErrorCode.CORRUPT_INTERMEDIATE, message)


def classify(exc: BaseException, directories: Iterable[str] = ()) -> VsrError:
    """The one-line error for any exception a stage let escape.

    ``directories``: where the stage writes (work and scratch), named when a full disk
    raised without saying which file it was writing.
    """
    if isinstance(exc, VsrError):
        return exc
    if is_no_space(exc):
        assert isinstance(exc, OSError)
        filename = exc.filename if isinstance(exc.filename, str) else None
        where = os.path.dirname(filename) if filename else " or ".join(dict.fromkeys(directories)) or "."
        return no_space(where, exc)
    if is_storage_failure(exc):
        return storage_error("S3 request", "", exc)
    if isinstance(exc, json.JSONDecodeError):
        return corrupt(f"a stored JSON record is damaged: {exc}")
    return internal(exc)


def internal(exc: BaseException) -> VsrError:
    """A bug: its type, message and the innermost frame of the project's code, on one line."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if _PACKAGES & set(Path(f.filename).parts)] or frames
    where = f" ({Path(ours[-1].filename).name}:{ours[-1].lineno})" if ours else ""
    text = " ".join(str(exc).split()) or "no message"
    return VsrError(ErrorCode.INTERNAL, f"{type(exc).__name__}: {text}{where}")
