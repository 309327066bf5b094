"""``/files/<key>``: the presigned GET/PUT URLs of the local storage, standing in for S3.

GET (and HEAD) stream the file, with ``Range`` support; PUT streams the body into a temporary
file and renames it into place when complete, so a broken upload leaves nothing behind. A PUT
URL works once and takes at most the bytes it was signed for.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from vsr_api.local.asgi_adapter import body_chunks, declared_length, json_error
from vsr_api.local.dir_storage import FILES_ROUTE, DirStorage
from vsr_client.contract import ErrorCode, VsrError

log = logging.getLogger(__name__)

_BAD_URL = "file URL is invalid, expired or used already; ask the API for a new one"


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
            return FileResponse(path)
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
