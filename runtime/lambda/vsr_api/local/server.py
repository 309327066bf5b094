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

import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import uvicorn
from starlette.routing import BaseRoute

from vsr_api.adapters.av_prober import AvProber
from vsr_api.handler import Handler, make_handler
from vsr_api.job_record import utcnow
from vsr_api.local.dir_storage import DirStorage
from vsr_api.local.file_job_store import FileJobStore
from vsr_api.local.http_app import build_http_app
from vsr_api.local.http_protocol import DeadlineH11Protocol
from vsr_api.local.job_runner import LocalJobRunner, remove_intermediates
from vsr_api.local.process_groups import kill_leftovers
from vsr_api.local.request_origin import is_loopback
from vsr_api.local.web_assets import web_routes
from vsr_api.service import JobService
from vsr_api.settings import ApiSettings
from vsr_client.api_models import TERMINAL_STATES
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


DEFAULT_FAILED_RETENTION = timedelta(days=3)


class LocalApi:
    """The local adapters, the service and the handler for one data directory.

    One server per data directory (a lock file says so). Starting, it kills what a crashed
    server left running and resumes every unfinished job; while it runs, failed and cancelled
    jobs' intermediates are removed once ``failed_retention`` has passed.
    """

    def __init__(
        self,
        data_dir: Path,
        api_key: str | None = None,
        jobs: int | None = None,
        concurrent_jobs: int | None = None,
        failed_retention: timedelta = DEFAULT_FAILED_RETENTION,
    ) -> None:
        from vsr_worker.models.registry import available

        self.data_dir = data_dir.resolve()
        self.api_key = api_key
        self.failed_retention = failed_retention
        state = self.data_dir / ".vsr-api"
        state.mkdir(parents=True, exist_ok=True)
        self._lock_file = _lock_data_dir(state / "server.lock")
        self.settings = ApiSettings(bucket=str(self.data_dir))
        self.storage = DirStorage(self.data_dir, max_upload_bytes=self.settings.max_input_bytes, state_dir=state)
        self.store = FileJobStore(state)
        self.runner = LocalJobRunner(self.data_dir, jobs=jobs, concurrent_jobs=concurrent_jobs, state_dir=state)
        self.service = JobService(
            self.settings,
            storage=self.storage,
            prober=AvProber(),
            store=self.store,
            scheduler=self.runner,
            models=available(),
        )
        self.handler: Handler = make_handler(lambda: self.service)
        self._recover()
        self._stop = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep_now_and_then, name="vsr-sweeper", daemon=True)
        self._sweeper.start()

    def _recover(self) -> None:
        leftovers = kill_leftovers(self.data_dir)
        if leftovers:
            log.warning("killed processes a previous server left running", extra={"pids": leftovers})
        for record in self.store.records():
            if record.state in TERMINAL_STATES or self.runner.resume(record):
                continue
            # Recorded, but the server stopped before it reached the runner: nothing to resume.
            record.state = "failed"
            record.failure_reason = "[submit_failed] the server stopped while this job was being submitted"
            record.touch()
            self.store.put(record)

    def sweep(self) -> list[str]:
        """Remove the intermediates of jobs that failed or were cancelled longer than the
        retention ago, the run files of every job that ended that long ago, and the records of
        expired upload URLs; the jobs whose intermediates went."""
        self.storage.forget_expired_uploads()
        cutoff = utcnow() - self.failed_retention
        swept = []
        for record in self.store.records():
            if record.state not in TERMINAL_STATES or record.updated_at > cutoff:
                continue
            self.runner.forget(record.job_id)
            if record.state != "succeeded" and remove_intermediates(self.data_dir / record.work_prefix):
                swept.append(record.job_id)
        return swept

    def _sweep_now_and_then(self) -> None:
        interval = min(600.0, max(1.0, self.failed_retention.total_seconds() / 4))
        while True:
            try:
                self.sweep()
            except Exception:  # a sweep is housekeeping: never let it end the thread
                log.exception("sweep failed")
            if self._stop.wait(interval):
                return

    def close(self) -> None:
        self._stop.set()
        self.runner.shutdown()
        with contextlib.suppress(OSError):
            self._lock_file.close()


def _lock_data_dir(path: Path):
    """Hold an exclusive lock on ``path`` for this process's life (the kernel drops it on exit)."""
    handle = open(path, "a+")  # noqa: SIM115 (held open on purpose)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise VsrError(
            ErrorCode.INVALID_ARGUMENT, f"the data directory is in use by another vsr-local serve ({holder})"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    return handle


def _listen(host: str, port: int, backlog: int) -> socket.socket:
    """Listening at once: connections made before uvicorn runs wait in the backlog."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class LocalServer:
    """uvicorn serving ``api`` on ``host:port`` (0: a free port); ``url`` is known at once.

    Beside the API it serves the web page at ``/``, ``/openapi.json`` and the API reference at
    ``/docs`` (``web_assets``), then any ``extra_routes``."""

    def __init__(
        self,
        api: LocalApi,
        host: str = "127.0.0.1",
        port: int = 8080,
        limits: HttpLimits = HttpLimits(),
        extra_routes: Sequence[BaseRoute] = (),
        sock: socket.socket | None = None,
    ) -> None:
        self.api = api
        self.limits = limits
        self.socket = sock or _listen(host, port, limits.backlog)
        self.url = url_of(self.socket)
        api.storage.base_url = self.url
        page = web_routes(api.service.models or (), api.settings.default_model, api.api_key is not None, self.url)
        app = build_http_app(
            api.handler,
            api.storage,
            api_key=api.api_key,
            extra_routes=[*page, *extra_routes],
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
    concurrent_jobs: int | None = None,
    failed_retention: timedelta = DEFAULT_FAILED_RETENTION,
    limits: HttpLimits = HttpLimits(),
) -> None:
    if not is_loopback(host) and not api_key:
        raise VsrError(ErrorCode.INVALID_ARGUMENT, f"binding to {host} needs --api-key (only localhost runs open)")
    sock = _listen(host, port, limits.backlog)
    # The first line on stdout says where the server listens (the demo and scripts read it);
    # connections made from now on wait in the backlog until the jobs are recovered.
    hello = {"url": url_of(sock), "data_dir": str(data_dir.resolve()), "api_key_required": api_key is not None}
    print(json.dumps({**hello, "pid": os.getpid()}), flush=True)
    api = LocalApi(
        data_dir, api_key=api_key, jobs=jobs, concurrent_jobs=concurrent_jobs, failed_retention=failed_retention
    )
    LocalServer(api, limits=limits, sock=sock).run()
