"""``vsr-local serve``: the Lambda handler behind a small HTTP server, with local adapters.

Every API request becomes an API Gateway proxy event for the same handler the Lambda runs.
``/files/<key>`` serves the presigned GET/PUT URLs the local storage hands out (streamed,
signature-checked), standing in for S3.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import shutil
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from vsr_api.adapters.av_prober import AvProber
from vsr_api.handler import Handler, make_handler
from vsr_api.local.dir_storage import FILES_ROUTE, DirStorage
from vsr_api.local.file_job_store import FileJobStore
from vsr_api.local.job_runner import LocalJobRunner
from vsr_api.local.proxy_event import LocalContext, response_body, to_event
from vsr_api.local.web_assets import web_response
from vsr_api.service import JobService
from vsr_api.settings import ApiSettings
from vsr_client.api_models import API_KEY_HEADER, ErrorBody, http_status
from vsr_client.contract import ErrorCode, VsrError

log = logging.getLogger(__name__)

# Like API Gateway's own payload limit: larger API requests are refused before the handler.
MAX_API_REQUEST = 10 * 1024 * 1024
_CHUNK = 1024 * 1024


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LocalApi:
    """The local adapters, the service and the handler for one data directory."""

    def __init__(self, data_dir: Path, api_key: str | None = None, jobs: int | None = None) -> None:
        from vsr_worker.models.registry import available

        self.data_dir = data_dir.resolve()
        self.api_key = api_key
        self.settings = ApiSettings(bucket=str(self.data_dir))
        self.storage = DirStorage(self.data_dir)
        self.runner = LocalJobRunner(self.data_dir, jobs=jobs)
        self.service = JobService(
            self.settings,
            storage=self.storage,
            prober=AvProber(),
            store=FileJobStore(self.data_dir / ".vsr-api"),
            scheduler=self.runner,
            models=available(),
        )
        self.handler: Handler = make_handler(lambda: self.service)


class _RequestHandler(BaseHTTPRequestHandler):
    server: LocalServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        log.info("%s %s", self.address_string(), format % args)

    # -- plumbing -----------------------------------------------------------------------
    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, exc: VsrError) -> None:
        body = ErrorBody.of(exc).model_dump_json().encode()
        self._send(http_status(exc.code), body, {"Content-Type": "application/json"})

    def _length(self) -> int:
        try:
            return int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return -1

    # -- verbs --------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        path = urlsplit(self.path).path
        if path.startswith(FILES_ROUTE):
            self._file(unquote(path[len(FILES_ROUTE) :]))
            return
        if self.command in ("GET", "HEAD") and self._page(path):
            return
        self._api()

    def _page(self, path: str) -> bool:
        """The web page and its assets (public, like the page of any API): True when served."""
        api = self.server.api
        found = web_response(path, api.service.models or (), api.settings.default_model, api.api_key is not None)
        if found is None:
            return False
        body, content_type = found
        self._send(200, body, {"Content-Type": content_type, "Cache-Control": "no-cache"})
        return True

    def _api(self) -> None:
        api = self.server.api
        if api.api_key is not None:
            given = self.headers.get(API_KEY_HEADER) or ""
            if not hmac.compare_digest(given.encode(), api.api_key.encode()):
                self._drain()
                self._error(VsrError(ErrorCode.UNAUTHORIZED, f"missing or wrong {API_KEY_HEADER} header"))
                return
        length = self._length()
        if length < 0 or length > MAX_API_REQUEST:
            self.close_connection = True
            self._error(VsrError(ErrorCode.BODY_TOO_LARGE, f"request body over {MAX_API_REQUEST} bytes"))
            return
        body = self.rfile.read(length) if length else b""
        host = self.headers.get("Host") or f"{self.server.server_address[0]}:{self.server.server_address[1]}"
        headers = {k: v for k, v in self.headers.items()}
        headers["X-Forwarded-Proto"] = "http"
        event = to_event(self.command, self.path, headers, body, host, self.client_address[0])
        response = api.handler(event, LocalContext())
        out_headers = dict(response.get("headers") or {})
        for key, values in (response.get("multiValueHeaders") or {}).items():
            out_headers.setdefault(key, values[-1])
        self._send(int(response["statusCode"]), response_body(response), out_headers)

    def _drain(self) -> None:
        length = self._length()
        if 0 < length <= MAX_API_REQUEST:
            self.rfile.read(length)
        elif length:
            self.close_connection = True

    def _file(self, key: str) -> None:
        storage = self.server.api.storage
        query = parse_qs(urlsplit(self.path).query)
        method = "GET" if self.command == "HEAD" else self.command
        ok = storage.verify(method, key, query.get("expires", [""])[0], query.get("signature", [""])[0])
        if not ok or method not in ("GET", "PUT"):
            self._drain()
            self._error(VsrError(ErrorCode.UNAUTHORIZED, "file URL is invalid or expired; ask the API for a new one"))
            return
        try:
            path = storage.path(key)
        except ValueError:
            self._error(VsrError(ErrorCode.INVALID_KEY, "key leaves the data directory", "key"))
            return
        if method == "PUT":
            self._receive(path)
            return
        if not path.is_file():
            self._error(VsrError(ErrorCode.INPUT_NOT_FOUND, f"no object {key!r}"))
            return
        size = path.stat().st_size
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if self.command == "GET":
            with open(path, "rb") as fh:
                shutil.copyfileobj(fh, self.wfile, _CHUNK)

    def _receive(self, path: Path) -> None:
        length = self._length()
        if length < 0:
            self.close_connection = True
            self._error(VsrError(ErrorCode.INVALID_ARGUMENT, "PUT needs a Content-Length"))
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.upload")
        with open(tmp, "wb") as fh:
            left = length
            while left:
                chunk = self.rfile.read(min(_CHUNK, left))
                if not chunk:
                    break
                fh.write(chunk)
                left -= len(chunk)
        if left:
            tmp.unlink(missing_ok=True)
            self.close_connection = True
            self._error(VsrError(ErrorCode.INVALID_ARGUMENT, "upload ended early"))
            return
        tmp.replace(path)
        self._send(200, b"", {"ETag": '"local"'})


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, api: LocalApi, host: str = "127.0.0.1", port: int = 8080) -> None:
        super().__init__((host, port), _RequestHandler)
        self.api = api
        bound_host, bound_port = self.server_address[:2]
        self.url = f"http://{bound_host}:{bound_port}"
        api.storage.base_url = self.url

    def start_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="vsr-local-server", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self.api.runner.shutdown()


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def serve(host: str, port: int, data_dir: Path, api_key: str | None = None, jobs: int | None = None) -> None:
    if not is_loopback(host) and not api_key:
        raise VsrError(ErrorCode.INVALID_ARGUMENT, f"binding to {host} needs --api-key (only localhost runs open)")
    api = LocalApi(data_dir, api_key=api_key, jobs=jobs)
    server = LocalServer(api, host, port)
    # Stop like on Ctrl-C (running stages are terminated, not orphaned) when told to terminate.
    signal.signal(signal.SIGTERM, _interrupt)
    print(
        json.dumps({"url": server.url, "data_dir": str(api.data_dir), "api_key_required": api_key is not None}),
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
