"""``vsr-local serve``: the Lambda handler behind uvicorn, with local adapters.

Every API request becomes an API Gateway proxy event for the same handler the Lambda runs
(``asgi_adapter``); ``/files/<key>`` serves the presigned GET/PUT URLs the local storage hands
out (``file_routes``); ``http_app`` says which path goes where.

Why uvicorn: a maintained asyncio server, so a slow or idle client costs a socket, not a
thread; it takes the listen backlog, keep-alive timeout and graceful shutdown as settings,
and its h11 protocol is small enough to add the request-header deadline it lacks
(``http_protocol``). Starlette does routing, static files and ``Range`` for what gets
mounted next to the API.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from starlette.routing import BaseRoute

from vsr_api.adapters.av_prober import AvProber
from vsr_api.handler import Handler, make_handler
from vsr_api.local.dir_storage import DirStorage
from vsr_api.local.file_job_store import FileJobStore
from vsr_api.local.http_app import build_http_app
from vsr_api.local.http_protocol import DeadlineH11Protocol
from vsr_api.local.job_runner import LocalJobRunner
from vsr_api.service import JobService
from vsr_api.settings import ApiSettings
from vsr_client.contract import ErrorCode, VsrError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpLimits:
    """Connection handling of the local server (seconds, bytes, connections)."""

    backlog: int = 2048  # pending connections the kernel queues before refusing (uvicorn's default)
    header_timeout: float = 10.0  # a request's headers must arrive within this
    body_idle_timeout: float = 30.0  # longest silence while a request body is being sent
    keep_alive: float = 5.0  # idle keep-alive connections are closed after this
    graceful_shutdown: float = 10.0  # in-flight requests get this long to finish on shutdown


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
        self.storage = DirStorage(self.data_dir, max_upload_bytes=self.settings.max_input_bytes)
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

    def close(self) -> None:
        self.runner.shutdown()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock  # uvicorn calls listen(backlog) on it


class LocalServer:
    """uvicorn serving ``api`` on ``host:port`` (0: a free port); ``url`` is known at once."""

    def __init__(
        self,
        api: LocalApi,
        host: str = "127.0.0.1",
        port: int = 8080,
        limits: HttpLimits = HttpLimits(),
        extra_routes: Sequence[BaseRoute] = (),
    ) -> None:
        self.api = api
        self.limits = limits
        self.socket = _bind(host, port)
        bound_host, bound_port = self.socket.getsockname()[:2]
        self.url = f"http://[{bound_host}]:{bound_port}" if ":" in bound_host else f"http://{bound_host}:{bound_port}"
        api.storage.base_url = self.url
        app = build_http_app(
            api.handler,
            api.storage,
            api_key=api.api_key,
            extra_routes=extra_routes,
            body_idle_timeout=limits.body_idle_timeout,
            on_shutdown=api.close,
        )
        config = uvicorn.Config(
            app,
            http=DeadlineH11Protocol.with_deadline(limits.header_timeout),
            lifespan="on",
            backlog=limits.backlog,
            timeout_keep_alive=int(max(1, limits.keep_alive)),
            timeout_graceful_shutdown=int(max(1, limits.graceful_shutdown)),
            log_config=None,  # the process's logging setup applies
            access_log=False,
            server_header=False,
        )
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Serve until SIGINT/SIGTERM (in the main thread) or ``close()``; then stop the jobs."""
        self.server.run(sockets=[self.socket])

    def start_background(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, name="vsr-local-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the local server did not start")
            time.sleep(0.01)
        return self._thread

    def close(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=self.limits.graceful_shutdown + 30)
        else:
            self.api.close()
        self.socket.close()


def serve(
    host: str,
    port: int,
    data_dir: Path,
    api_key: str | None = None,
    jobs: int | None = None,
    limits: HttpLimits = HttpLimits(),
) -> None:
    if not is_loopback(host) and not api_key:
        raise VsrError(ErrorCode.INVALID_ARGUMENT, f"binding to {host} needs --api-key (only localhost runs open)")
    api = LocalApi(data_dir, api_key=api_key, jobs=jobs)
    server = LocalServer(api, host, port, limits)
    print(
        json.dumps(
            {
                "url": server.url,
                "data_dir": str(api.data_dir),
                "api_key_required": api_key is not None,
                "pid": os.getpid(),
            }
        ),
        flush=True,
    )
    server.run()
