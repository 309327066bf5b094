"""uvicorn's h11 protocol with the one timeout uvicorn lacks: a deadline for a request's headers.

uvicorn times out idle keep-alive connections, but a client that connects and sends nothing,
or half a request line, or trickles header bytes, holds its connection for ever (the
keep-alive timer is cancelled by the first byte). Here every request's headers must arrive
within ``header_timeout`` seconds of the connection opening or of the previous response;
after that the server answers 408 and closes. Body reads are bounded by an idle timeout in
the ASGI layer (``asgi_adapter.body_chunks``), where the app sees each chunk.

Responses are written with ``TCP_NODELAY`` set, so a keep-alive request never waits for the
client's delayed ACK (Nagle): asyncio sets it already; it is set here explicitly because the
latency of every SDK call depends on it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from http import HTTPStatus
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from vsr_client.api_models import ErrorBody, http_status
from vsr_client.contract import ErrorCode, VsrError

log = logging.getLogger(__name__)


def _closing_error(exc: VsrError) -> bytes:
    """A whole error response, written as is: the connection's HTTP state is past saving."""
    status = http_status(exc.code)
    body = json.dumps(ErrorBody.of(exc).model_dump()).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class DeadlineH11Protocol(H11Protocol):
    """``H11Protocol`` plus the header deadline; ``with_deadline`` makes a configured subclass."""

    header_timeout: float = 10.0

    @classmethod
    def with_deadline(cls, header_timeout: float) -> type[DeadlineH11Protocol]:
        return type(cls.__name__, (cls,), {"header_timeout": header_timeout})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._deadline_cycle: object = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._arm()

    def data_received(self, data: bytes) -> None:
        # A new request starts when no response is pending: its headers are now on the clock.
        if self._deadline is None and (self.cycle is None or self.cycle.response_complete):
            self._arm()
        super().data_received(data)
        if self._deadline is not None and self.cycle is not self._deadline_cycle:
            self._disarm()  # h11 parsed the headers: the request is the app's now

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline_cycle = self.cycle
        self._deadline = self.loop.call_later(self.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or (self.cycle is not None and not self.cycle.response_complete):
            return  # closed already, or a request is being served (its headers did arrive)
        log.info("closing a connection whose request headers did not arrive in time", extra={"client": self.client})
        exc = VsrError(ErrorCode.REQUEST_TIMEOUT, "the request's headers did not arrive in time")
        self.transport.write(_closing_error(exc))
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        # What h11 could not parse gets the contract's JSON body too, not uvicorn's plain text.
        if not self.transport.is_closing():
            self.transport.write(_closing_error(VsrError(ErrorCode.INVALID_ARGUMENT, f"malformed HTTP request: {msg}")))
        self.transport.close()
