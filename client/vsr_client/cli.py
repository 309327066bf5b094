"""``vsr``: the SDK's verbs on the command line, and a one-shot ``upscale``.

    vsr upscale FILE -o OUT [--scale 2|4] [--model NAME]   upload, submit, follow, download
                                                        (this machine's engine when no URL is set)
    vsr [--url URL] [--api-key KEY] submit KEY [--scale 4] [--wait] [--download OUT]
    vsr status JOB_ID | wait JOB_ID | cancel JOB_ID | jobs
    vsr upload FILE [--key KEY]
    vsr download JOB_ID OUT

URL and key default to $VSR_API_URL and $VSR_API_KEY. Results print as JSON on stdout;
progress (a bar on a terminal) and errors (``vsr: error [code]: message``) go to stderr.
Exit codes follow one table for ``vsr`` and ``vsr-worker`` (vsr_client.contract.ExitCode).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from pydantic import BaseModel

from vsr_client import __version__
from vsr_client.api_models import ENVS, TASKS, JobStatus
from vsr_client.client import KEY_ENV, URL_ENV, Client
from vsr_client.contract import (
    DEFAULT_MODEL,
    DEFAULT_SEGMENT_TIME,
    SCALES,
    ErrorCode,
    ExitCode,
    VsrError,
    output_container,
)
from vsr_client.errors import JobFailed, VsrApiError
from vsr_client.job_progress import JobProgressDisplay, format_progress

PROG = "vsr"
WORKER_ENGINE = "vsr_worker.engine.local_run"

__all__ = ["build_parser", "format_progress", "main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line and the usage exit code, like every other error
        self.exit(int(ExitCode.USAGE), f"{PROG}: error [{ErrorCode.INVALID_ARGUMENT.value}]: {message}\n")


def _print(value: object) -> None:
    if isinstance(value, BaseModel):
        print(value.model_dump_json(indent=2))
    else:
        print(json.dumps(value, indent=2, default=str))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Video super-resolution: the API client and a one-shot upscale.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("--url", default=None, help=f"API base URL (default ${URL_ENV})")
    parser.add_argument("--api-key", default=None, help=f"API key, sent as x-api-key (default ${KEY_ENV})")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per HTTP request")
    parser.add_argument("--retries", type=int, default=4, help="retries on 429/5xx/connection errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    # -q works after the command too (`vsr upscale clip.mp4 -o out.mp4 -q`).
    quiet = _Parser(add_help=False)
    quiet.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress output")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, parents=[quiet])

    def job_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--scale", type=int, default=2, choices=SCALES, help="factor per side (default 2)")
        p.add_argument("--model", default=None, help=f"model name (default: the server's; {DEFAULT_MODEL} here)")
        p.add_argument("--segment-time", type=float, default=DEFAULT_SEGMENT_TIME, help="seconds per segment")
        p.add_argument("--task", default="inference", choices=TASKS)
        p.add_argument("--env", default="spot", choices=ENVS, help="which Batch queue (the API only)")

    up = command("upscale", "upscale a local file: through the API if a URL is set, else on this machine")
    up.add_argument("input", help="the video to upscale")
    up.add_argument("-o", "--output", required=True, help="where to save the result (.mp4, .mov or .mkv)")
    job_options(up)
    up.add_argument("-y", "--overwrite", action="store_true", help="replace an existing output")

    s = command("submit", "submit a job for an object already in the bucket")
    s.add_argument("key")
    job_options(s)
    s.add_argument("--output-key", default=None)
    s.add_argument("--idempotency-key", default=None)
    s.add_argument("--wait", action="store_true", help="wait for the job to end, with progress")
    s.add_argument("--download", metavar="PATH", default=None, help="wait, then save the result here")

    for name, text in (("status", "a job's status"), ("wait", "wait for a job to end"), ("cancel", "cancel a job")):
        p = command(name, text)
        p.add_argument("job_id")
        if name == "wait":
            p.add_argument("--interval", type=float, default=2.0, help="seconds between polls")
            p.add_argument("--timeout", dest="wait_timeout", type=float, default=None, help="give up after (s)")
    j = command("jobs", "recent jobs, one line each")
    j.add_argument("--limit", type=int, default=20)
    u = command("upload", "upload a file; prints the key to submit")
    u.add_argument("path")
    u.add_argument("--key", default=None)
    d = command("download", "save a finished job's result")
    d.add_argument("job_id")
    d.add_argument("path")
    return parser


def _client(args: argparse.Namespace) -> Client:
    url = args.url or os.environ.get(URL_ENV)
    if not url:
        raise VsrError(ErrorCode.INVALID_ARGUMENT, f"no API URL: pass --url or set ${URL_ENV}", "url")
    return Client(url, api_key=args.api_key, timeout=args.timeout, retries=args.retries)


def _wait(client: Client, job_id: str, quiet: bool, interval: float = 2.0, timeout: float | None = None) -> JobStatus:
    display = JobProgressDisplay(quiet=quiet)
    try:
        return client.wait(job_id, interval=interval, timeout=timeout, on_progress=display.update)
    finally:
        display.close()


def _checked_output(path: str, overwrite: bool) -> Path:
    """The extension decides the container; an existing file is kept unless told otherwise."""
    out = Path(path)
    output_container(path)
    if out.exists() and not overwrite:
        raise VsrError(ErrorCode.OUTPUT_EXISTS, f"output exists: {out} (pass --overwrite to replace it)", "output")
    return out


def _upscale(args: argparse.Namespace) -> int:
    out = _checked_output(args.output, args.overwrite)
    if not Path(args.input).is_file():
        raise VsrError(ErrorCode.INPUT_NOT_FOUND, f"no such file: {args.input}", "input")
    if args.url or os.environ.get(URL_ENV):
        return _upscale_remote(args, out)
    return _upscale_here(args, out)


def _upscale_remote(args: argparse.Namespace, out: Path) -> int:
    client = _client(args)
    key = client.upload(args.input)
    # MP4 is the server's default container; another one is asked for by the output key's extension.
    output_key = None if out.suffix.lower() == ".mp4" else f"{uuid.uuid4().hex}/{out.name}"
    job = client.submit(
        key,
        scale=args.scale,
        model=args.model,
        segment_time=args.segment_time,
        task=args.task,
        env=args.env,
        output_key=output_key,
    )
    if not args.quiet:
        print(f"uploaded {args.input} as {key}; job {job.job_id}: {job.segments} segment(s)", file=sys.stderr)
    status = _wait(client, job.job_id, args.quiet)
    # Merge writes Matroska instead when MP4 cannot hold a source stream: keep the real extension.
    suffix = Path(status.output_key).suffix
    target = out if suffix.lower() == out.suffix.lower() else out.with_suffix(suffix)
    saved = client.download(job.job_id, target)
    print(saved)
    return 0


def _upscale_here(args: argparse.Namespace, out: Path) -> int:
    """No URL: the embedded engine (vsr-worker's run_local), imported only now."""
    try:
        engine = importlib.import_module(WORKER_ENGINE)
    except ImportError as exc:
        raise VsrError(
            ErrorCode.ENGINE_UNAVAILABLE,
            f"no API URL (--url or ${URL_ENV}) and no local engine ({exc.name} is not installed): "
            "set a URL, or install vsr-worker to upscale on this machine",
        ) from None
    result = engine.run_local(
        Path(args.input),
        out,
        scale=args.scale,
        segment_time=args.segment_time,
        model=args.model or DEFAULT_MODEL,
        overwrite=args.overwrite,
        task=args.task,
        show_progress=not args.quiet,
    )
    print(result.output)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.command == "upscale":
        return _upscale(args)
    client = _client(args)
    if args.command == "submit":
        job = client.submit(
            args.key,
            scale=args.scale,
            task=args.task,
            env=args.env,
            segment_time=args.segment_time,
            model=args.model,
            output_key=args.output_key,
            idempotency_key=args.idempotency_key,
        )
        if not (args.wait or args.download):
            _print(job)
            return 0
        if not args.quiet:
            print(f"submitted {job.job_id} ({job.segments} segment(s))", file=sys.stderr)
        status = _wait(client, job.job_id, args.quiet)
        if args.download:
            path = client.download(job.job_id, args.download)
            if not args.quiet:
                print(f"saved {path}", file=sys.stderr)
        _print(status)
    elif args.command == "status":
        _print(client.status(args.job_id))
    elif args.command == "wait":
        _print(_wait(client, args.job_id, args.quiet, args.interval, args.wait_timeout))
    elif args.command == "cancel":
        _print(client.cancel(args.job_id))
    elif args.command == "jobs":
        for status in client.jobs(args.limit):
            print(format_progress(status))
    elif args.command == "upload":
        print(client.upload(args.path, key=args.key))
    elif args.command == "download":
        print(client.download(args.job_id, args.path))
    return 0


def _error(code: str, message: str, field: str | None = None) -> None:
    where = f" (field {field})" if field else ""
    print(f"{PROG}: error [{code}]: {message}{where}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = run(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below
        return code
    except BrokenPipeError:
        # The reader left (`vsr jobs | head`): stop quietly, like any Unix tool. Point stdout at
        # /dev/null so the interpreter's own flush at exit does not complain again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return int(ExitCode.BROKEN_PIPE)
    except VsrApiError as exc:
        _error(exc.code, exc.message, exc.field)
        return exc.exit_code
    except VsrError as exc:
        _error(exc.code.value, exc.message, exc.field)
        return exc.exit_code
    except JobFailed as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return int(ExitCode.FAILURE)
    except TimeoutError as exc:
        _error("timeout", str(exc))
        return int(ExitCode.TEMPFAIL)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
