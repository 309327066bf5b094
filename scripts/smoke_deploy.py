"""Smoke-test a deployed stack the way a user would: upload, submit, follow, download, check.

After ``pulumi up``:

    python scripts/smoke_deploy.py                       # reads `pulumi stack output --json --show-secrets`
    python scripts/smoke_deploy.py --stack prod
    pulumi stack output --json --show-secrets > out.json && python scripts/smoke_deploy.py --outputs out.json
    python scripts/smoke_deploy.py --api-url URL --api-key KEY   # or $VSR_API_URL / $VSR_API_KEY

It generates a small sample video (PyAV: moving pattern + stereo tone), uploads it through
the API's presigned upload (POST /uploads, as the SDK does), submits the seed request
(POST / {"key", "scale", "task", "env", "segment_time"}), follows the job's progress, downloads
the result and checks it with ffprobe against the source: frame count, every frame's
timestamp, size (scale x the source's) and audio streams. It prints a pass/fail table and
exits 0 when every check passed, 1 when one failed, 2 when it could not start.

Nothing here needs AWS credentials: the API key is the only secret, and S3 is reached only
through the presigned URLs the API hands out. ``--segment-time`` must lie within the stack's
``limits.segment_time_min``..``max`` (default 10..300 s); the default sample has two segments.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from vsr_client.api_models import API_KEY_HEADER, JobAccepted, JobStatus
from vsr_client.client import KEY_ENV, URL_ENV, Client
from vsr_client.errors import VsrApiError

EXIT_FAILED, EXIT_SETUP = 1, 2


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


class SetupError(Exception):
    """The smoke test could not start (no outputs, no ffprobe, ...)."""


def stack_outputs(args: argparse.Namespace) -> dict[str, Any]:
    """api_url, api_key_value and bucket: from flags, a saved outputs file, the environment,
    or the Pulumi CLI, in that order."""
    if args.api_url:
        return {"api_url": args.api_url, "api_key_value": args.api_key, "bucket": args.bucket}
    if args.outputs:
        text = sys.stdin.read() if args.outputs == "-" else Path(args.outputs).read_text()
        return json.loads(text)
    if os.environ.get(URL_ENV):
        return {"api_url": os.environ[URL_ENV], "api_key_value": os.environ.get(KEY_ENV), "bucket": args.bucket}
    if shutil.which("pulumi") is None:
        raise SetupError(f"no stack outputs: pass --outputs FILE, --api-url/--api-key or ${URL_ENV}/${KEY_ENV}")
    command = ["pulumi", "stack", "output", "--json", "--show-secrets"]
    command += ["--stack", args.stack] if args.stack else []
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SetupError(f"{' '.join(command)} failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def ffprobe(path: Path, *args: str) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", *args, str(path)], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out)


def frame_times(path: Path) -> list[float]:
    """Every video frame's presentation time (s), in stored order, as ffprobe decodes them."""
    frames = ffprobe(
        path, "-select_streams", "v:0", "-show_frames", "-show_entries", "frame=pts_time,best_effort_timestamp_time"
    )["frames"]
    return [float(f.get("pts_time", f.get("best_effort_timestamp_time"))) for f in frames]


def describe(path: Path) -> dict:
    streams = ffprobe(path, "-show_streams")["streams"]
    video = next(s for s in streams if s["codec_type"] == "video")
    return {
        "size": (int(video["width"]), int(video["height"])),
        "audio": sum(s["codec_type"] == "audio" for s in streams),
    }


def compare(src: Path, out: Path, scale: int) -> list[Check]:
    """The result against its source, frame by frame."""
    a, b = frame_times(src), frame_times(out)
    checks = [Check("frame count", len(a) == len(b), f"{len(b)} of {len(a)}")]
    # ffprobe prints times to the microsecond; frame-exact means the same time for every frame.
    off = [i for i, (x, y) in enumerate(zip(a, b)) if abs(x - y) > 1e-6]
    detail = "all equal" if not off and len(a) == len(b) else f"first difference at frame {off[0] if off else len(b)}"
    checks.append(Check("frame timestamps", not off and len(a) == len(b), detail))
    s, o = describe(src), describe(out)
    want = (s["size"][0] * scale, s["size"][1] * scale)
    checks.append(Check("size", o["size"] == want, f"{o['size'][0]}x{o['size'][1]} (want {want[0]}x{want[1]})"))
    checks.append(Check("audio streams", o["audio"] == s["audio"], f"{o['audio']} of {s['audio']}"))
    return checks


def submit_seed(client: Client, body: dict) -> JobAccepted:
    """POST / with the seed request's body, exactly as the README's cURL example sends it."""
    headers = {API_KEY_HEADER: client.api_key} if client.api_key else {}
    response = client.session.post(client.base_url + "/", json=body, headers=headers, timeout=client.timeout)
    if response.status_code >= 400:
        raise VsrApiError(response.status_code, "submit_failed", response.text[:500])
    return JobAccepted.model_validate(response.json())


def _progress_printer(out: Any):
    last = [""]

    def show(status: JobStatus) -> None:
        p = status.progress
        line = (
            f"  {status.state:<9} split {p.split.state}, upscale {p.upscale.done}/{p.upscale.total}"
            f"{f' ({p.upscale.frames_done}/{p.upscale.frames_total} frames)' if p.upscale.frames_total else ''}"
            f", merge {p.merge.state}"
        )
        if line != last[0]:
            print(line, file=out, flush=True)
            last[0] = line

    return show


def run(args: argparse.Namespace, session: requests.Session | None = None, out: Any = sys.stdout) -> list[Check]:
    """Every step, as a list of checks (a failed step ends the list)."""
    if shutil.which("ffprobe") is None:
        raise SetupError("ffprobe is needed for the checks (Debian: apt-get install ffmpeg)")
    outputs = stack_outputs(args)
    if not outputs.get("api_url"):
        raise SetupError("the stack outputs hold no api_url")
    client = Client(outputs["api_url"], api_key=outputs.get("api_key_value"), session=session, retries=2)
    checks = [Check("stack outputs", True, f"{outputs['api_url']} (bucket {outputs.get('bucket') or '?'})")]
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="vsr-smoke-"))
    work.mkdir(parents=True, exist_ok=True)
    width, height = (int(v) for v in args.size.split("x"))
    src = work / "smoke-source.mp4"
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from make_sample_video import make_sample  # the demo's sample writer, a sibling script

    make_sample(str(src), width, height, args.seconds, args.fps)
    checks.append(Check("sample", True, f"{width}x{height}, {args.seconds:g} s, {args.fps} fps: {src}"))
    started = time.monotonic()
    try:
        key = client.upload(src, key=args.key)
        checks.append(Check("upload (POST /uploads, presigned PUT)", True, key))
        job = submit_seed(
            client,
            {"key": key, "scale": args.scale, "task": "inference", "env": args.env, "segment_time": args.segment_time},
        )
        segments = math.ceil(args.seconds / args.segment_time)
        checks.append(Check("submit (POST /)", job.segments == segments, f"{job.job_id}: {job.segments} segment(s)"))
        print(f"job {job.job_id} submitted; following it", file=out, flush=True)
        status = client.wait(
            job.job_id, interval=args.interval, timeout=args.timeout, on_progress=_progress_printer(out),
            raise_on_failure=False,
        )  # fmt: skip
        ok = status.state == "succeeded"
        checks.append(Check("job", ok, status.state if ok else f"{status.state}: {status.failure_reason}"))
        if not ok:
            return checks
        result = client.download(job.job_id, work / "smoke-result.mp4")
        checks.append(Check("download (presigned GET)", True, f"{result.stat().st_size} bytes: {result}"))
    except (VsrApiError, TimeoutError, requests.RequestException) as exc:
        checks.append(Check("api", False, f"{type(exc).__name__}: {exc}"))
        return checks
    checks += compare(src, result, args.scale)
    checks.append(Check("elapsed", True, f"{time.monotonic() - started:.0f} s from upload to download"))
    return checks


def table(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"{'check':<{width}}  result  detail", f"{'-' * width}  ------  ------"]
    lines += [f"{c.name:<{width}}  {'PASS' if c.ok else 'FAIL':<6}  {c.detail}" for c in checks]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stack", help="the Pulumi stack to read outputs from (default: the selected one)")
    p.add_argument("--outputs", metavar="FILE", help="saved `pulumi stack output --json --show-secrets` ('-': stdin)")
    p.add_argument("--api-url", help="the API's URL (the api_url output)")
    p.add_argument("--api-key", help="the API key (the api_key_value output)")
    p.add_argument("--bucket", help="the data bucket (shown only; S3 is reached through presigned URLs)")
    p.add_argument("--key", help="upload to this key (default: the API's choice under its input prefix)")
    p.add_argument("--size", default="160x90", help="sample size WxH (default 160x90)")
    p.add_argument("--seconds", type=float, default=12.0, help="sample length (default 12)")
    p.add_argument("--fps", type=int, default=25, help="sample frame rate (default 25)")
    p.add_argument("--scale", type=int, choices=(2, 4), default=2, help="upscale factor (default 2)")
    p.add_argument("--segment-time", type=float, default=10.0, help="seconds per segment (default 10)")
    p.add_argument("--env", choices=("spot", "onDemand"), default="spot", help="the Batch queue (default spot)")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between status polls (default 10)")
    p.add_argument("--timeout", type=float, default=3600.0, help="give up after this many seconds (default 3600)")
    p.add_argument("--work-dir", help="keep the sample and the result here (default: a temporary folder)")
    return p


def main(argv: list[str] | None = None, session: requests.Session | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        checks = run(args, session=session)
    except SetupError as exc:
        print(f"smoke_deploy: error: {exc}", file=sys.stderr)
        return EXIT_SETUP
    print(table(checks))
    passed = all(c.ok for c in checks)
    print("PASS" if passed else "FAIL")
    return 0 if passed else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
