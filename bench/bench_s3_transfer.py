"""S3 transfer throughput of the worker's storage layer against a moto server, beside a local copy.

    .venv/bin/python bench/bench_s3_transfer.py [--size-mib 256] [--repeat 3]

What is measured, in one run, on the same bytes (random, so nothing compresses):

- ``local copy``: ``shutil.copyfile`` of the payload to a new file on the same disk (the floor
  any S3 path is compared with);
- ``upload``: ``vsr_worker.storage.output_file("s3://...")``, the worker's write path: the
  block hard-links the payload into the temp file the stage would write, and leaving the block
  uploads it with s3transfer (multipart, parallel parts);
- ``download``: ``vsr_worker.storage.input_file("s3://...")``: s3transfer's ranged, parallel
  GETs into a temp file, verified against the payload's SHA-256 once.

The S3 side is moto's ``ThreadedMotoServer`` in this process, bound to 127.0.0.1 only, reached
through ``VSR_S3_ENDPOINT_URL`` with dummy credentials (nothing leaves the machine). moto keeps
objects in memory and serves them from a single Python process, so these figures are the cost
of the worker's transfer code plus moto, not of Amazon S3: they show the layer's overhead
relative to a disk copy, and catch regressions (a lost multipart config, a serial download).

Writes the figures and the hardware to bench/results/s3_transfer.json (``--out``).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import platform
import shutil
import socket
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIB = 2**20


def hardware(workdir: Path) -> dict:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 2**20, 1)
    fs = None
    with contextlib.suppress(OSError):
        best = ""
        for line in Path("/proc/mounts").read_text().splitlines():
            device, mount, kind = line.split()[:3]
            if str(workdir.resolve()).startswith(mount) and len(mount) >= len(best):
                best, fs = mount, f"{kind} on {device} (mounted at {mount})"
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "memory_gib": mem_gib,
        "workdir_filesystem": fs,
        "os": platform.platform(),
        "python": sys.version.split()[0],
    }


def versions() -> dict:
    out = {}
    for name in ("boto3", "botocore", "s3transfer", "moto"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def write_payload(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    chunk = 8 * MIB
    with path.open("wb") as fh:
        left = size
        while left:
            block = os.urandom(min(chunk, left))
            digest.update(block)
            fh.write(block)
            left -= len(block)
    return digest.hexdigest()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(8 * MIB), b""):
            digest.update(block)
    return digest.hexdigest()


def drop_file(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def summary(seconds: list, size: int) -> dict:
    best = min(seconds)
    return {
        "seconds": [round(s, 4) for s in seconds],
        "best_s": round(best, 4),
        "median_s": round(statistics.median(seconds), 4),
        "best_mib_per_s": round(size / MIB / best, 1),
        "median_mib_per_s": round(size / MIB / statistics.median(seconds), 1),
    }


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256, help="payload size in MiB (default 256)")
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds of each transfer (default 3)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "s3_transfer.json")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch directory (default: a temp dir)")
    args = parser.parse_args(argv)

    from vsr_worker import storage

    if not hasattr(storage, "reset_s3_client"):
        print(
            f"bench_s3_transfer: {storage.__file__} has no S3 support (reset_s3_client missing); "
            "run it on a tree whose vsr_worker.storage handles s3:// URIs",
            file=sys.stderr,
        )
        return 2
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no per-request log lines

    size = args.size_mib * MIB
    work = Path(tempfile.mkdtemp(prefix="vsr-bench-s3-", dir=args.workdir))
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    saved_env = {k: os.environ.get(k) for k in _ENV}
    try:
        payload = work / "payload.bin"
        print(f"writing {args.size_mib} MiB of random bytes to {payload}", file=sys.stderr)
        digest = write_payload(payload, size)

        server.start()
        os.environ.update(
            {
                "VSR_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
                "VSR_SCRATCH_DIR": str(work / "scratch"),  # same disk as the payload: hard links work
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_SESSION_TOKEN": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
            }
        )
        storage.reset_s3_client()
        bucket = "vsr-bench"
        storage.s3_client().create_bucket(Bucket=bucket)

        local, upload, download = [], [], []
        for round_ in range(args.repeat):
            copy = work / "copy.bin"
            start = time.perf_counter()
            shutil.copyfile(payload, copy)
            local.append(time.perf_counter() - start)
            drop_file(copy)

            uri = f"s3://{bucket}/bench/round-{round_}/segment.mp4"
            start = time.perf_counter()
            with storage.output_file(uri) as tmp:
                os.link(payload, tmp)  # what a stage writes; the upload happens on leaving the block
            upload.append(time.perf_counter() - start)

            start = time.perf_counter()
            with storage.input_file(uri) as got:
                download.append(time.perf_counter() - start)
                if round_ == 0:
                    assert got.stat().st_size == size, "downloaded size differs"
                    assert sha256(got) == digest, "downloaded bytes differ"
            storage.s3_client().delete_object(Bucket=bucket, Key=uri.split("/", 3)[3])
            print(
                f"round {round_ + 1}/{args.repeat}: copy {local[-1]:.3f} s, "
                f"upload {upload[-1]:.3f} s, download {download[-1]:.3f} s",
                file=sys.stderr,
            )

        config = storage._transfer_config() if hasattr(storage, "_transfer_config") else None
        result = {
            "benchmark": "s3_transfer",
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "payload_mib": args.size_mib,
            "repeat": args.repeat,
            "s3": "moto ThreadedMotoServer on 127.0.0.1 (in-process, in-memory objects)",
            "storage_module": os.path.relpath(storage.__file__, ROOT)
            if storage.__file__.startswith(str(ROOT))
            else storage.__file__,
            "transfer_config": {
                "multipart_threshold_mib": config.multipart_threshold / MIB,
                "multipart_chunksize_mib": config.multipart_chunksize / MIB,
                "max_concurrency": config.max_concurrency,
            }
            if config is not None
            else None,
            "local_copy": summary(local, size),
            "upload": summary(upload, size),
            "download": summary(download, size),
            "ratio_vs_local_copy": {
                # how many times longer than a local copy of the same bytes (median of rounds)
                "upload": round(statistics.median(upload) / statistics.median(local), 2),
                "download": round(statistics.median(download) / statistics.median(local), 2),
            },
            "hardware": hardware(work),
            "versions": versions(),
        }
    finally:
        with contextlib.suppress(Exception):
            server.stop()
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        with contextlib.suppress(Exception):
            storage.reset_s3_client()
        shutil.rmtree(work, ignore_errors=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    rows = [("local copy", result["local_copy"]), ("upload", result["upload"]), ("download", result["download"])]
    print(f"S3 transfer, {args.size_mib} MiB, best/median of {args.repeat} ({result['s3']}):")
    for name, row in rows:
        print(f"  {name:<11} {row['best_mib_per_s']:>8.1f} MiB/s best  {row['median_mib_per_s']:>8.1f} MiB/s median")
    ratio = result["ratio_vs_local_copy"]
    print(f"  time vs local copy (median): upload x{ratio['upload']}, download x{ratio['download']}")
    print(f"  hardware: {result['hardware']['cpu']}, {result['hardware']['logical_cpus']} CPUs")
    print(f"wrote {args.out}")
    return 0


_ENV = (
    "VSR_S3_ENDPOINT_URL",
    "VSR_SCRATCH_DIR",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
)

if __name__ == "__main__":
    sys.exit(main())
