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

A server that runs open (no API key: loopback only) answers only requests whose ``Host`` is a
loopback name or address, and whose ``Origin``, when a browser sends one, is a loopback origin
(``host_not_allowed``, 403, otherwise). The first stops DNS rebinding: a web page whose own
name has been re-pointed at 127.0.0.1 could otherwise read this server as same-origin (list
the jobs, download their results); its requests still say its own name. The second stops
cross-site request forgery: the API accepts a JSON body sent as ``text/plain`` (what ``curl
-d`` and simple clients send), which any web page may POST to 127.0.0.1 without a preflight.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from contextvars import ContextVar
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from vsr_api.local.asgi_adapter import json_error
from vsr_client.contract import ErrorCode, VsrError

log = logging.getLogger(__name__)

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


def _host_name(host_header: str | None) -> str | None:
    """The host name of a well-formed ``Host`` header (lower case, IPv6 without brackets)."""
    if not host_header or not _HOST_HEADER.fullmatch(host_header):
        return None
    return urlsplit(f"//{host_header}").hostname or ""


def origin_for(host_header: str | None, bound_url: str) -> str:
    """The origin to build URLs with for a request that sent ``Host: host_header``."""
    host = _host_name(host_header)
    if host is None:
        return bound_url
    bound_host = urlsplit(bound_url).hostname or ""
    if is_loopback(host) or host == bound_host.lower() or _is_wildcard(bound_host):
        return f"http://{host_header}"
    return bound_url


def open_server_answers(host_header: str | None) -> bool:
    """Whether a server with no API key answers a request that sent ``Host: host_header``: a
    loopback name or address, or no ``Host`` at all (HTTP/1.0; a browser always sends one)."""
    if host_header is None:
        return True
    host = _host_name(host_header)
    return host is not None and is_loopback(host)


def open_server_accepts_origin(origin_header: str | None) -> bool:
    """Whether a server with no API key answers a request a browser sent from ``origin_header``:
    none (not a browser, or a same-origin GET) or a page of a loopback origin."""
    if origin_header is None:
        return True
    parts = urlsplit(origin_header)
    return parts.scheme in ("http", "https") and is_loopback(parts.hostname or "")


def current_origin(default: str) -> str:
    """The origin of the request being served (``default`` outside a request)."""
    return _origin.get() or default


class OriginMiddleware:
    """Sets the request's origin for everything that runs on its behalf (the handler's worker
    thread included: anyio copies the context into it); ``loopback_only`` (a server with no API
    key) refuses a ``Host`` or a browser's ``Origin`` that is not loopback."""

    def __init__(self, app: ASGIApp, bound_url: str, loopback_only: bool = False) -> None:
        self.app = app
        self.bound_url = bound_url
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host")
        refusal = self._refusal(host, headers.get("origin")) if self.loopback_only else None
        if refusal is not None:
            log.warning("refused a request (Host %r, Origin %r)", (host or "")[:100], headers.get("origin", "")[:100])
            await json_error(refusal, close=True)(scope, receive, send)
            return
        token = _origin.set(origin_for(host, self.bound_url))
        try:
            await self.app(scope, receive, send)
        finally:
            _origin.reset(token)

    @staticmethod
    def _refusal(host: str | None, origin: str | None) -> VsrError | None:
        if not open_server_answers(host):
            return VsrError(
                ErrorCode.HOST_NOT_ALLOWED,
                "this server runs without an API key and answers only requests sent to localhost, "
                "127.0.0.1 or [::1]; to serve other names, start it with --api-key",
            )
        if not open_server_accepts_origin(origin):
            return VsrError(
                ErrorCode.HOST_NOT_ALLOWED,
                "this server runs without an API key and refuses requests from pages of other sites; "
                "open its own page, or start it with --api-key",
            )
        return None
