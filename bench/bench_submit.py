"""Submit latency inside the Lambda handler, with moto in-process (no network).

    python bench/bench_submit.py [--runs 40] [--segments 2]

What is timed: one API Gateway event through ``vsr_api.handler`` for ``POST /`` (validate,
head + ranged-GET probe with PyAV, plan, manifest to S3, job record to DynamoDB, three Batch
SubmitJob calls), and ``GET /jobs/{id}``. moto's own request handling is inside the numbers,
so they bound the handler's cost from above; real AWS adds a few network round trips of
10–30 ms each. Result: JSON in bench/results/submit.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from moto import mock_aws  # noqa: E402

from tests.api.media import small_video  # noqa: E402
from tests.api.moto_world import BUCKET, MOTO_BATCH, FakeContext, build_world, proxy_event  # noqa: E402


def summary(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    return {
        "runs": len(ms),
        "p50_ms": round(statistics.median(ms), 2),
        "p95_ms": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 2),
        "mean_ms": round(statistics.fmean(ms), 2),
        "min_ms": round(ms[0], 2),
        "max_ms": round(ms[-1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of the generated source video")
    parser.add_argument("--segment-time", type=float, default=2.0)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "submit.json"))
    args = parser.parse_args()
    logging.disable(logging.INFO)  # the handler's JSON logs would dominate the terminal

    with tempfile.TemporaryDirectory() as tmp, mock_aws(config=MOTO_BATCH):
        clip = small_video(Path(tmp) / "clip.mp4", seconds=args.seconds, size="320x180")
        world = build_world()
        world.s3.upload_file(str(clip), BUCKET, "inputs/clip.mp4")
        source_bytes = clip.stat().st_size
        body = {"key": "inputs/clip.mp4", "scale": 2, "segment_time": args.segment_time}
        submit_times, status_times, probe_times = [], [], []
        world.handler(proxy_event("POST", "/", body), FakeContext())  # warm-up: cold start, imports
        job_ids = []
        for _ in range(args.runs):
            t = time.perf_counter()
            response = world.handler(proxy_event("POST", "/", body), FakeContext())
            submit_times.append(time.perf_counter() - t)
            assert response["statusCode"] == 202, response["body"]
            job_ids.append(json.loads(response["body"])["job_id"])
        for job_id in job_ids:
            t = time.perf_counter()
            response = world.handler(proxy_event("GET", f"/jobs/{job_id}"), FakeContext())
            status_times.append(time.perf_counter() - t)
            assert response["statusCode"] == 200
        storage, prober = world.service.storage, world.service.prober
        obj = storage.head("inputs/clip.mp4")
        for _ in range(args.runs):
            t = time.perf_counter()
            info = prober.probe(storage, obj)
            probe_times.append(time.perf_counter() - t)
        segments = json.loads(response["body"])["segments"]

    result = {
        "benchmark": "submit latency in the Lambda handler (moto in-process, no network)",
        "source": {"bytes": source_bytes, "seconds": args.seconds, "size": "320x180"},
        "segments": segments,
        "submit": summary(submit_times),
        "status": summary(status_times),
        "probe_only": {**summary(probe_times), "bytes_read": info.bytes_read},
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
