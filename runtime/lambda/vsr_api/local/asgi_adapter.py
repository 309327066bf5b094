"""The HTTP adapter: an ASGI request becomes an API Gateway proxy event for the Lambda's handler.

What API Gateway does in front of the Lambda is done here in front of the same handler: the
API key check, the payload limit, the proxy event, and the proxy response back into HTTP.
The handler is synchronous (it reads files and probes videos), so it runs in a worker thread
and the event loop keeps serving other connections meanwhile.

Request bodies are read with an idle timeout: a client that stops sending half-way gets a 408
and its connection closed, instead of holding a thread or a socket for ever.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from vsr_api.handler import Handler
from vsr_api.local.proxy_event import LocalContext, response_body, response_headers, to_event
from vsr_client.api_models import API_KEY_HEADER, ErrorBody, http_status
from vsr_client.contract import ErrorCode, VsrError

log = logging.getLogger(__name__)

# Like API Gateway's own payload limit: larger API requests are refused before the handler.
MAX_API_REQUEST = 10 * 1024 * 1024


def json_error(exc: VsrError, headers: dict[str, str] | None = None, close: bool = False) -> Response:
    """The contract's error body; ``close`` ends the connection (the rest of the body is unread)."""
    extra = dict(headers or {})
    if close:
        extra["Connection"] = "close"
    return Response(
        ErrorBody.of(exc).model_dump_json(),
        status_code=http_status(exc.code),
        headers=extra,
        media_type="application/json",
    )


def declared_length(request: Request) -> int | None:
    """``Content-Length`` as a number; None when absent (chunked); VsrError when malformed."""
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    if not raw.isdigit():
        raise VsrError(ErrorCode.INVALID_ARGUMENT, "Content-Length is not a number")
    return int(raw)


async def body_chunks(receive: Receive, idle_timeout: float) -> AsyncIterator[bytes]:
    """The request body as it arrives; ``request_timeout`` when the client goes quiet."""
    while True:
        try:
            message = await asyncio.wait_for(receive(), idle_timeout)
        except TimeoutError:
            raise VsrError(ErrorCode.REQUEST_TIMEOUT, f"no request body bytes arrived for {idle_timeout:g} s") from None
        if message["type"] == "http.disconnect":
            raise VsrError(ErrorCode.INVALID_ARGUMENT, "the client went away before the body was complete")
        if message.get("body"):
            yield message["body"]
        if not message.get("more_body", False):
            return


async def read_body(request: Request, limit: int, idle_timeout: float) -> bytes:
    """The whole body, at most ``limit`` bytes (``body_too_large`` otherwise, before reading it)."""
    length = declared_length(request)
    if length is not None and length > limit:
        raise VsrError(ErrorCode.BODY_TOO_LARGE, f"request body over {limit} bytes")
    parts: list[bytes] = []
    size = 0
    async for chunk in body_chunks(request.receive, idle_timeout):
        size += len(chunk)
        if size > limit:
            raise VsrError(ErrorCode.BODY_TOO_LARGE, f"request body over {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


class LambdaProxy:
    """ASGI app: every request it gets goes to the Lambda handler as a proxy event."""

    def __init__(self, handler: Handler, api_key: str | None, body_idle_timeout: float = 30.0) -> None:
        self.handler = handler
        self.api_key = api_key
        self.body_idle_timeout = body_idle_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await self._respond(request)
        except VsrError as exc:
            # The body may be partly unread: close rather than parse its rest as the next request.
            response = json_error(exc, close=True)
        await response(scope, receive, send)

    async def _respond(self, request: Request) -> Response:
        if self.api_key is not None:
            given = request.headers.get(API_KEY_HEADER) or ""
            if not hmac.compare_digest(given.encode(), self.api_key.encode()):
                raise VsrError(ErrorCode.UNAUTHORIZED, f"missing or wrong {API_KEY_HEADER} header")
        body = await read_body(request, MAX_API_REQUEST, self.body_idle_timeout)
        server = request.scope.get("server") or ("127.0.0.1", 0)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]]
        headers.append(("X-Forwarded-Proto", "http"))
        event = to_event(
            request.method,
            request.scope.get("raw_path", b"").decode("latin-1") or request.url.path,
            request.scope.get("query_string", b"").decode("latin-1"),
            headers,
            body,
            request.headers.get("host") or f"{server[0]}:{server[1]}",
            request.client.host if request.client else "",
        )
        result = await anyio.to_thread.run_sync(self.handler, event, LocalContext())
        response = Response(response_body(result), status_code=int(result["statusCode"]))
        response.raw_headers = [
            (k.lower().encode("latin-1", "replace"), v.encode("latin-1", "replace"))
            for k, v in response_headers(result)
            if k.lower() not in ("content-length", "connection", "transfer-encoding")
        ] + [(b"content-length", str(len(response.body)).encode())]
        return response
