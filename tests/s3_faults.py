"""moto's S3 on 127.0.0.1 behind a WSGI middleware that answers chosen requests with S3's own
error responses (500 InternalError, 503 ServiceUnavailable, 503 SlowDown), as S3 does under
load; everything else reaches moto. It records every request and what it was answered."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

# (HTTP status, S3 error code, message) as S3 documents them.
INTERNAL_ERROR = (500, "InternalError", "We encountered an internal error. Please try again.")
SERVICE_UNAVAILABLE = (503, "ServiceUnavailable", "Service is unable to handle request.")
SLOW_DOWN = (503, "SlowDown", "Please reduce your request rate.")
_REASONS = {500: "Internal Server Error", 503: "Service Unavailable"}

# Decides a request's fault from (method, path, how many times this method+path was seen).
Plan = Callable[[str, str, int], "tuple[int, str, str] | None"]


@dataclass
class FaultyS3:
    plan: Plan = lambda method, path, seen: None
    log: list[tuple[str, str, int]] = field(default_factory=list)  # (method, path, status answered)
    _seen: dict[tuple[str, str], int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._app = DomainDispatcherApplication(create_backend_app)

    def __call__(self, environ: dict, start_response: Callable) -> list[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        with self._lock:
            seen = self._seen[(method, path)] = self._seen.get((method, path), 0) + 1
        fault = self.plan(method, path, seen)
        if fault is None:
            status: list[int] = []

            def record(line: str, headers: list, *args: object) -> Callable:
                status.append(int(line.split()[0]))
                return start_response(line, headers, *args)

            body = self._app(environ, record)
            self._append(method, path, status[0] if status else 0)
            return body
        _drain(environ)
        code, name, message = fault
        xml = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{name}</Code><Message>{message}</Message>'
        payload = (xml + "<RequestId>0000000000000000</RequestId></Error>").encode()
        start_response(
            f"{code} {_REASONS[code]}", [("Content-Type", "application/xml"), ("Content-Length", str(len(payload)))]
        )
        self._append(method, path, code)
        return [payload]

    def _append(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.log.append((method, path, status))

    def answers(self, method: str, path: str) -> list[int]:
        return [status for m, p, status in self.log if (m, p) == (method, path)]


def _drain(environ: dict) -> None:
    """Consume the request body, so the kept-alive connection reads the next request cleanly."""
    stream = environ["wsgi.input"]
    if environ.get("wsgi.input_terminated"):  # chunked: werkzeug ends the stream itself
        stream.read()
    else:
        stream.read(int(environ.get("CONTENT_LENGTH") or 0))


class _QuietHandler(MotoRequestHandler):
    def log_request(self, *args: object, **kwargs: object) -> None:
        pass


@contextmanager
def faulty_s3_server(port: int) -> Iterator[tuple[str, FaultyS3]]:
    """Yields (endpoint URL, the middleware); set ``middleware.plan`` to inject faults."""
    middleware = FaultyS3()
    server = make_server("127.0.0.1", port, middleware, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", middleware
    finally:
        server.shutdown()
        thread.join()
