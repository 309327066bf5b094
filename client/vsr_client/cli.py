"""``vsr``: the SDK's verbs on the command line.

    vsr [--url URL] [--api-key KEY] submit KEY [--scale 4] [--wait] [--download OUT]
    vsr status JOB_ID | wait JOB_ID | cancel JOB_ID | jobs
    vsr upload FILE [--key KEY]
    vsr download JOB_ID OUT

URL and key default to $VSR_API_URL and $VSR_API_KEY. Results print as JSON on stdout;
progress and errors (``vsr: error [code]: message``) go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from pydantic import BaseModel

from vsr_client.api_models import ENVS, TASKS, JobStatus
from vsr_client.client import KEY_ENV, URL_ENV, Client
from vsr_client.contract import DEFAULT_SEGMENT_TIME
from vsr_client.errors import JobFailed, VsrApiError

PROG = "vsr"


def format_progress(status: JobStatus) -> str:
    p = status.progress
    up = p.upscale
    frames = f", {up.frames_done or 0}/{up.frames_total} frames" if up.frames_total else ""
    return (
        f"{status.job_id}: {status.state} | split {p.split.state} | "
        f"upscale {up.done}/{up.total} segments{frames} | merge {p.merge.state}"
    )


def _print(value: object) -> None:
    if isinstance(value, BaseModel):
        print(value.model_dump_json(indent=2))
    else:
        print(json.dumps(value, indent=2, default=str))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Video super-resolution API client.")
    parser.add_argument("--url", default=None, help=f"API base URL (default ${URL_ENV})")
    parser.add_argument("--api-key", default=None, help=f"API key, sent as x-api-key (default ${KEY_ENV})")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per HTTP request")
    parser.add_argument("--retries", type=int, default=4, help="retries on 429/5xx/connection errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("submit", help="submit a job for an object already in the bucket")
    s.add_argument("key")
    s.add_argument("--scale", type=int, default=2, choices=(2, 4))
    s.add_argument("--task", default="inference", choices=TASKS)
    s.add_argument("--env", default="spot", choices=ENVS)
    s.add_argument("--segment-time", type=float, default=DEFAULT_SEGMENT_TIME)
    s.add_argument("--model", default=None)
    s.add_argument("--output-key", default=None)
    s.add_argument("--idempotency-key", default=None)
    s.add_argument("--wait", action="store_true", help="wait for the job to end")
    s.add_argument("--download", metavar="PATH", default=None, help="wait, then save the result here")

    for name, text in (("status", "a job's status"), ("wait", "wait for a job to end"), ("cancel", "cancel a job")):
        p = sub.add_parser(name, help=text)
        p.add_argument("job_id")
        if name == "wait":
            p.add_argument("--interval", type=float, default=2.0)
            p.add_argument("--timeout", dest="wait_timeout", type=float, default=None)
    j = sub.add_parser("jobs", help="recent jobs")
    j.add_argument("--limit", type=int, default=20)
    u = sub.add_parser("upload", help="upload a file; prints the key to submit")
    u.add_argument("path")
    u.add_argument("--key", default=None)
    d = sub.add_parser("download", help="save a finished job's result")
    d.add_argument("job_id")
    d.add_argument("path")
    return parser


def _wait(client: Client, job_id: str, quiet: bool, interval: float = 2.0, timeout: float | None = None) -> JobStatus:
    last = ""

    def show(status: JobStatus) -> None:
        nonlocal last
        line = format_progress(status)
        if not quiet and line != last:
            print(line, file=sys.stderr, flush=True)
            last = line

    return client.wait(job_id, interval=interval, timeout=timeout, on_progress=show)


def run(args: argparse.Namespace) -> int:
    client = Client(args.url, api_key=args.api_key, timeout=args.timeout, retries=args.retries)
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
        print(f"submitted {job.job_id} ({job.segments} segment(s))", file=sys.stderr)
        status = _wait(client, job.job_id, args.quiet)
        if args.download:
            path = client.download(job.job_id, args.download)
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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except VsrApiError as exc:
        field = f" (field {exc.field})" if exc.field else ""
        print(f"{PROG}: error [{exc.code}]: {exc.message}{field}", file=sys.stderr)
        return 2 if exc.status == 0 else 1
    except JobFailed as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 64


if __name__ == "__main__":
    sys.exit(main())
