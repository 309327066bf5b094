"""``vsr-local serve --host 127.0.0.1 --port 8080 --data-dir DIR [--api-key KEY]``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from vsr_client.contract import VsrError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vsr-local", description="The vsr API on this machine.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the API over HTTP; DIR plays the bucket")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    serve.add_argument("--data-dir", default=".vsr/data", help="the bucket: keys are paths inside it")
    serve.add_argument(
        "--api-key",
        default=os.environ.get("VSR_LOCAL_API_KEY"),
        help="require this x-api-key header (default: none on localhost; $VSR_LOCAL_API_KEY)",
    )
    serve.add_argument(
        "-c",
        "--concurrent-jobs",
        type=_positive,
        default=None,
        help="jobs that run at once (default: cores); more wait in a queue",
    )
    serve.add_argument(
        "-j", "--jobs", type=_positive, default=None, help="upscale processes per job (default: cores / -c)"
    )
    serve.add_argument(
        "--keep-failed-hours",
        type=float,
        default=72.0,
        help="keep a failed or cancelled job's intermediates (segments, parts, logs) this long (default 72)",
    )
    serve.add_argument("-v", "--verbose", action="store_true")
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr)
    from vsr_api.local.server import serve

    try:
        serve(
            args.host,
            args.port,
            Path(args.data_dir),
            api_key=args.api_key,
            jobs=args.jobs,
            concurrent_jobs=args.concurrent_jobs,
            failed_retention=timedelta(hours=args.keep_failed_hours),
        )
    except VsrError as exc:
        print(f"vsr-local: error [{exc.code.value}]: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # Ctrl-C: uvicorn has stopped serving and the jobs' processes
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
