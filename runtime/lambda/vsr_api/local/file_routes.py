"""``/files/<key>``: the presigned GET/PUT URLs of the local storage, standing in for S3.

GET (and HEAD) stream the file the way a browser's ``<video>`` needs to seek in it: its
Content-Type by extension, ``Accept-Ranges: bytes``, ``Range`` answered 206 with Content-Range
(Starlette's FileResponse), 416 with the contract's JSON body for a range past the end, and a
``Range`` that cannot be parsed ignored (the whole file, 200), as RFC 9110 allows and S3 does.
PUT streams the body into a temporary file and renames it into place when complete, so a
broken upload leaves nothing behind. A PUT URL works once and takes at most the bytes it was
signed for.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, MalformedRangeHeader, RangeNotSatisfiable, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from vsr_api.local.asgi_adapter import body_chunks, declared_length, json_error
from vsr_api.local.dir_storage import FILES_ROUTE, DirStorage
from vsr_client.contract import MEDIA_TYPES, ErrorCode, VsrError

log = logging.getLogger(__name__)

_BAD_URL = "file URL is invalid, expired or used already; ask the API for a new one"


def media_type(key: str) -> str:
    """The Content-Type of an object: the container its extension names, else bytes."""
    return MEDIA_TYPES.get(Path(key).suffix.lower(), "application/octet-stream")


class _Unsatisfiable(Exception):
    def __init__(self, size: int) -> None:
        self.size = size


class ObjectResponse(FileResponse):
    """FileResponse with the contract's 416 and RFC 9110's leniency for a Range it cannot parse."""

    @classmethod
    def _parse_range_header(cls, http_range: str, file_size: int) -> list[tuple[int, int]]:
        try:
            return super()._parse_range_header(http_range, file_size)
        except MalformedRangeHeader:
            return []  # no ranges: the whole file
        except RangeNotSatisfiable:
            raise _Unsatisfiable(file_size) from None  # past FileResponse's own plain-text 416

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except _Unsatisfiable as exc:  # raised before anything was sent
            error = VsrError(ErrorCode.RANGE_NOT_SATISFIABLE, f"the range starts past the object's {exc.size} bytes")
            await json_error(error, headers={"Content-Range": f"bytes */{exc.size}"})(scope, receive, send)


class FileRoutes:
    def __init__(self, storage: DirStorage, body_idle_timeout: float = 30.0) -> None:
        self.storage = storage
        self.body_idle_timeout = body_idle_timeout

    def routes(self) -> list[Route]:
        return [Route(FILES_ROUTE + "{key:path}", self.endpoint, methods=["GET", "HEAD", "PUT"])]

    async def endpoint(self, request: Request) -> Response:
        key = request.path_params["key"]
        method = "GET" if request.method == "HEAD" else request.method
        fields = self.storage.verify(method, key, dict(request.query_params))
        try:
            if fields is None:
                raise VsrError(ErrorCode.UNAUTHORIZED, _BAD_URL)
            path = self.storage.path(key)
            if method == "PUT":
                return await self._receive(request, path, fields)
            if not path.is_file():
                raise VsrError(ErrorCode.INPUT_NOT_FOUND, f"no object {key!r}")
            return ObjectResponse(path, media_type=media_type(key), headers={"X-Content-Type-Options": "nosniff"})
        except VsrError as exc:
            return json_error(exc, close=method == "PUT")

    async def _receive(self, request: Request, path: Path, fields: dict[str, str]) -> Response:
        limit = int(fields.get("max", self.storage.max_upload_bytes))
        length = declared_length(request)
        if length is not None and length > limit:
            raise VsrError(ErrorCode.BODY_TOO_LARGE, f"this upload URL takes at most {limit} bytes, not {length}")
        if not self.storage.claim_upload(fields):
            raise VsrError(ErrorCode.UNAUTHORIZED, _BAD_URL)
        tmp: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".upload", dir=path.parent)
            size = 0
            with os.fdopen(fd, "wb") as fh:
                async for chunk in body_chunks(request.receive, self.body_idle_timeout):
                    size += len(chunk)
                    if size > limit:
                        raise VsrError(ErrorCode.BODY_TOO_LARGE, f"this upload URL takes at most {limit} bytes")
                    fh.write(chunk)
            if length is not None and size != length:
                raise VsrError(ErrorCode.INVALID_ARGUMENT, f"upload ended after {size} of {length} bytes")
            os.chmod(tmp, 0o644)  # mkstemp makes it private; an object is readable like any file
            os.replace(tmp, path)
            tmp = None
        except (NotADirectoryError, FileExistsError):  # a folder on the way is a file
            self.storage.unclaim_upload(fields)
            raise VsrError(ErrorCode.INVALID_KEY, "a folder of this key is a file", "key") from None
        except OSError:
            self.storage.unclaim_upload(fields)
            log.exception("upload could not be stored", extra={"key": request.path_params["key"]})
            raise VsrError(ErrorCode.INTERNAL, "the upload could not be stored; see the server log") from None
        except BaseException:
            self.storage.unclaim_upload(fields)
            raise
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
        return Response(b"", status_code=200, headers={"ETag": '"local"'})
