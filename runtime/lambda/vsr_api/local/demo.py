"""``./dev demo``: one video through the local API, the way a user of the service would do it.

Starts ``vsr-local serve`` on a free localhost port, uploads the video through the API's
presigned URL into the data directory, submits with the SDK (the learned model by default),
waits with progress, downloads the result, writes one frame of the source and of the result
as PNGs beside it, and prints where everything is; then stops the server.

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

from vsr_client import Client, JobFailed, VsrApiError
from vsr_client.contract import DEFAULT_MODEL
from vsr_client.job_progress import JobProgressDisplay


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
    parser.add_argument("--segment-time", type=float, default=3.0, help="short: 2 parallel segments of the sample")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="see `vsr-worker models` (bicubic: the quick baseline)")
    parser.add_argument("--task", default="inference")
    return parser


def before_after(source: Path, result: Path, frame: int) -> tuple[Path, Path]:
    """The same frame of the source and of the result, as PNGs beside the result."""
    from vsr_worker.media.still import frame_png, write_png

    before = write_png(frame_png(source, frame), result.with_name(f"{result.stem}_frame{frame}_before.png"))
    after = write_png(frame_png(result, frame), result.with_name(f"{result.stem}_frame{frame}_after.png"))
    return before, after


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
        display = JobProgressDisplay()
        try:
            final = client.wait(job.job_id, interval=0.5, on_progress=display.update)
        finally:
            display.close()
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
    frames = final.progress.upscale.frames_total or 1
    before, after = before_after(Path(args.video), output, frames // 2)
    print(f"model {final.model}, x{final.scale}: {frames} frames in {final.segments} segment(s)")
    print(f"before/after (frame {frames // 2}): {before.resolve()}  {after.resolve()}")
    print(f"wrote {output.resolve()} ({time.monotonic() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
