"""The local server's ASGI app: which path goes where.

Routes are tried in order: ``/files/<key>`` (presigned transfers), then any ``extra`` routes
(a web page, static files, documents: mount them here), then everything else goes to the
Lambda handler through the proxy adapter, exactly as API Gateway's ``/{proxy+}`` would. A path
both serve (``/``: the page on GET, the seed's submit on POST) goes to the handler for the
methods the API serves there (the contract's route list), to the extra route for the others.

Starlette does the routing, static files and ``Range`` responses; its own 404/405/500 answers
are turned into the contract's JSON error body, so a route mounted later answers like the API.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

from vsr_api.handler import Handler
from vsr_api.local.asgi_adapter import LambdaProxy, json_error
from vsr_api.local.dir_storage import DirStorage
from vsr_api.local.file_routes import FileRoutes
from vsr_api.local.request_origin import OriginMiddleware
from vsr_client.contract import ErrorCode, VsrError
from vsr_client.openapi import ROUTES

log = logging.getLogger(__name__)

_STATUS_CODES = {
    404: ErrorCode.ROUTE_NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    408: ErrorCode.REQUEST_TIMEOUT,
    413: ErrorCode.BODY_TOO_LARGE,
}


def api_methods(path: str) -> set[str]:
    """The methods the API serves on ``path`` (the contract's route list; HEAD wherever GET)."""
    methods = {route.method.upper() for route in ROUTES if re.fullmatch(re.sub(r"\{\w+\}", "[^/]+", route.path), path)}
    return methods | ({"HEAD"} if "GET" in methods else set())


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _STATUS_CODES.get(exc.status_code, ErrorCode.INVALID_ARGUMENT)
    headers = dict(exc.headers or {})
    message = str(exc.detail)
    if exc.status_code == 405:
        # A path the API shares with another route allows the API's methods there too.
        allowed = {m.strip() for m in headers.get("Allow", "").split(",") if m.strip()} | api_methods(request.url.path)
        headers["Allow"] = ", ".join(sorted(allowed))
        message = f"{request.method} is not allowed here; use {headers['Allow']}"
    return json_error(VsrError(code, message), headers=headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    return json_error(VsrError(ErrorCode.INTERNAL, f"internal error ({type(exc).__name__})"))


class _ProxyRoute(Route):
    """The catch-all route to the handler, except for paths another route owns: there a method
    that neither that route nor the API serves gets a 405 with ``Allow``, not the handler's 404."""

    def __init__(self, endpoint: LambdaProxy, owned_elsewhere: Sequence[BaseRoute]) -> None:
        # methods=None: every method reaches the handler, which answers 405 with Allow itself.
        super().__init__("/{path:path}", endpoint, methods=None)
        self.owned_elsewhere = list(owned_elsewhere)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        others = {route.matches(scope)[0] for route in self.owned_elsewhere}
        if Match.FULL in others:
            return Match.NONE, {}
        if Match.PARTIAL in others and scope["method"] not in api_methods(scope["path"]):
            return Match.NONE, {}  # the other route's 405
        return super().matches(scope)


def build_http_app(
    handler: Handler,
    storage: DirStorage,
    api_key: str | None = None,
    extra_routes: Sequence[BaseRoute] = (),
    body_idle_timeout: float = 30.0,
    on_shutdown: Callable[[], None] | None = None,
) -> Starlette:
    """The app; ``on_shutdown`` runs (in a thread) once the server has stopped taking requests.
    The URLs it hands out name the host each request was sent to (``request_origin``), else
    ``storage.base_url``, the address the server is bound to."""

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        if on_shutdown is not None:
            await anyio.to_thread.run_sync(on_shutdown)

    routes: list[BaseRoute] = [*FileRoutes(storage, body_idle_timeout).routes(), *extra_routes]
    routes.append(_ProxyRoute(LambdaProxy(handler, api_key, body_idle_timeout), routes))
    return Starlette(
        routes=routes,
        middleware=[Middleware(OriginMiddleware, bound_url=storage.base_url, loopback_only=api_key is None)],
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
    )
