"""``vsr-local serve --host 127.0.0.1 --port 8080 --data-dir DIR [--api-key KEY]``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
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
    serve.add_argument("-j", "--jobs", type=int, default=None, help="parallel upscale processes (default: cores)")
    serve.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr)
    from vsr_api.local.server import serve

    try:
        serve(args.host, args.port, Path(args.data_dir), api_key=args.api_key, jobs=args.jobs)
    except VsrError as exc:
        print(f"vsr-local: error [{exc.code.value}]: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # Ctrl-C: uvicorn has stopped serving and the jobs' processes
        pass
    return 0
