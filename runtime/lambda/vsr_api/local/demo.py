"""``./dev demo``: one video through the local API, the way a user of the service would do it.

Starts ``vsr-local serve`` on a free localhost port, uploads the video through the API's
presigned URL into the data directory, submits with the SDK, waits with progress, downloads
the result and prints its path; then stops the server.

    python -m vsr_api.local.demo VIDEO -o OUT.mp4 [--data-dir DIR] [--scale 2|4]
        [--segment-time S] [--model NAME] [--task inference|debug]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from vsr_client.cli import format_progress
from vsr_client.client import Client
from vsr_client.errors import JobFailed, VsrApiError


def start_server(data_dir: Path) -> tuple[subprocess.Popen, str]:
    """``vsr-local serve --port 0``; its first stdout line says where it listens."""
    script = Path(sys.executable).with_name("vsr-local")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "vsr_api.local.cli"]
    proc = subprocess.Popen(
        [*command, "serve", "--host", "127.0.0.1", "--port", "0", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if not line:
        proc.wait(timeout=10)
        raise RuntimeError(f"vsr-local serve exited with {proc.returncode} before listening")
    # Keep reading its (JSON log) output into a file, so a full pipe never stalls the server.
    threading.Thread(target=_drain, args=(proc, data_dir / "server.log"), daemon=True).start()
    return proc, json.loads(line)["url"]


def _drain(proc: subprocess.Popen, log_path: Path) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        for line in proc.stdout or ():
            log.write(line)
            log.flush()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vsr-demo", description="Upscale a video through the local API.")
    parser.add_argument("video")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--data-dir", default="out/vsr-data", help="the local server's bucket directory")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--segment-time", type=float, default=2.0)
    parser.add_argument("--model", default="bicubic", help="quick by default; see `vsr-worker models`")
    parser.add_argument("--task", default="inference")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.monotonic()
    server, url = start_server(Path(args.data_dir))
    print(f"local API at {url} (data in {args.data_dir})", file=sys.stderr)
    try:
        client = Client(url, timeout=60)
        key = client.upload(args.video, key=f"inputs/demo/{Path(args.video).name}")
        job = client.submit(key, scale=args.scale, segment_time=args.segment_time, model=args.model, task=args.task)
        print(f"submitted job {job.job_id}: {job.segments} segment(s), status at {job.status_url}", file=sys.stderr)
        last = ""

        def show(status) -> None:
            nonlocal last
            line = format_progress(status)
            if line != last:
                print(line, file=sys.stderr, flush=True)
                last = line

        client.wait(job.job_id, interval=0.5, on_progress=show)
        output = client.download(job.job_id, args.output)
    except (VsrApiError, JobFailed) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    print(f"wrote {output.resolve()} ({time.monotonic() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
