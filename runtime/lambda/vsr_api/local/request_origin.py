"""The origin (``http://host:port``) a request reached the local server by, for the URLs it hands out.

A browser treats ``http://localhost:8080`` and ``http://127.0.0.1:8080`` as different origins:
a presigned ``/files`` URL built from the address the server is bound to would be cross-origin
for a page opened by the other name (the page could not draw the result's frames, and its
content security policy would refuse it). So, for the span of one request, the URLs the server
builds (presigned URLs, the OpenAPI document's server) use the ``Host`` the client sent, when
that host may be trusted: a loopback name or address, the host the server is bound to, or any
host when it is bound to every interface (0.0.0.0 or ::). Any other ``Host`` gets the bound
address. Presigned URLs stay signed either way: the signature covers method, key and expiry,
not the host.
"""

from __future__ import annotations

import ipaddress
import re
from contextvars import ContextVar
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

# host[:port], the host a DNS name, an IPv4 address or a bracketed IPv6 address: nothing else
# (no user info, path or spaces) may reach a URL.
_HOST_HEADER = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)(?::\d{1,5})?")

_origin: ContextVar[str | None] = ContextVar("vsr_request_origin", default=None)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def origin_for(host_header: str | None, bound_url: str) -> str:
    """The origin to build URLs with for a request that sent ``Host: host_header``."""
    if not host_header or not _HOST_HEADER.fullmatch(host_header):
        return bound_url
    bound_host = urlsplit(bound_url).hostname or ""
    host = urlsplit(f"//{host_header}").hostname or ""
    if is_loopback(host) or host == bound_host.lower() or _is_wildcard(bound_host):
        return f"http://{host_header}"
    return bound_url


def current_origin(default: str) -> str:
    """The origin of the request being served (``default`` outside a request)."""
    return _origin.get() or default


class OriginMiddleware:
    """Sets the request's origin for everything that runs on its behalf (the handler's worker
    thread included: anyio copies the context into it)."""

    def __init__(self, app: ASGIApp, bound_url: str) -> None:
        self.app = app
        self.bound_url = bound_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = _origin.set(origin_for(Headers(scope=scope).get("host"), self.bound_url))
        try:
            await self.app(scope, receive, send)
        finally:
            _origin.reset(token)
