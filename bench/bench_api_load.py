"""Load on the local API server over loopback: concurrent submissions, status reads, bad requests.

    python bench/bench_api_load.py [--reads 2000] [--clients 16] [--jobs 24] [--timeout 900]

Starts ``vsr-local serve`` as a user would (its own process, a fresh data directory), then:

1. ``--jobs`` clients at once each upload a tiny video through ``POST /uploads`` + the signed
   PUT and submit it (bicubic model, so the jobs finish in seconds);
2. while those jobs run, ``--clients`` clients (one keep-alive connection each) make
   ``--reads`` status reads between them, every tenth request being an invalid POST that must
   get its documented 4xx code;
3. one client makes 50 sequential status calls through the SDK (a keep-alive Session: a
   server that writes a response in two segments without TCP_NODELAY costs ~40 ms a call);
4. waits (bounded by ``--timeout``) until every job has ended.

Counts an error for every unexpected status or body, a reset for every connection reset, and
samples the server process's RSS. Everything stops by itself; only 127.0.0.1 is contacted.
Result: JSON in bench/results/api_load.json.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from tests.api.local_http import ServerProcess, host_port, leftover_workers  # noqa: E402
from tests.api.media import small_video  # noqa: E402
from vsr_client.client import Client  # noqa: E402

# (method, path, body, expected status, expected code): what careless clients send.
INVALID = [
    ("POST", "/jobs", b'{"key": ""}', 400, "missing_key"),
    ("POST", "/jobs", b"not json", 400, "invalid_json"),
    ("POST", "/jobs", b'{"key": "inputs/x.mp4", "scale": 3}', 400, "invalid_scale"),
    ("POST", "/jobs", b'{"key": "inputs/\\ud800.mp4"}', 400, "invalid_key"),
    ("POST", "/jobs", b'{"key": "jobs/x/manifest.json"}', 403, "key_reserved"),
    ("POST", "/jobs", b'{"key": "inputs/none.mp4", "model": "bicubic"}', 404, "input_not_found"),
    ("POST", "/jobs", b'{"key": "' + b"k" * 20000 + b'"}', 413, "body_too_large"),
    ("PATCH", "/jobs", b"{}", 405, "method_not_allowed"),
]


def percentiles(samples: list[float]) -> dict[str, float | int]:
    if not samples:
        return {"count": 0}
    ms = sorted(s * 1000 for s in samples)

    def pick(q: float) -> float:
        return round(ms[min(len(ms) - 1, int(q * len(ms)))], 2)

    return {"count": len(ms), "p50_ms": pick(0.50), "p95_ms": pick(0.95), "p99_ms": pick(0.99), "max_ms": pick(1.0)}


class Tally:
    """Latencies and failures, shared by the client threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.times: dict[str, list[float]] = {}
        self.errors: list[str] = []
        self.resets = 0

    def timed(self, kind: str, call: Callable[[], str | None]) -> None:
        started = time.perf_counter()
        try:
            problem = call()
        except (requests.ConnectionError, ConnectionError, http.client.HTTPException) as exc:
            with self.lock:
                if isinstance(exc, ConnectionResetError) or "reset" in str(exc).lower():
                    self.resets += 1
                else:
                    self.errors.append(f"{kind}: {type(exc).__name__}: {str(exc)[:160]}")
            return
        except Exception as exc:
            with self.lock:
                self.errors.append(f"{kind}: {type(exc).__name__}: {str(exc)[:160]}")
            return
        elapsed = time.perf_counter() - started
        with self.lock:
            self.times.setdefault(kind, []).append(elapsed)
            if problem:
                self.errors.append(f"{kind}: {problem}")


def exchange(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    return response.status, json.loads(data) if data else {}


def check_invalid(conn: http.client.HTTPConnection, case: tuple) -> str | None:
    method, path, body, want, code = case
    status, answer = exchange(conn, method, path, body)
    got = answer.get("error", {}).get("code")
    if answer.get("error") and status in (408, 413):  # the server closed the connection after it
        conn.close()
    return None if (status, got) == (want, code) else f"{method} {path}: {status} {got}"


def check_status(conn: http.client.HTTPConnection, job_id: str) -> str | None:
    status, answer = exchange(conn, "GET", f"/jobs/{job_id}")
    return None if status == 200 and answer.get("job_id") == job_id else f"status {status}"


def run_together(calls: list[Callable[[], None]]) -> float:
    """Run every call in a thread of its own, all at once; the wall seconds until all ended."""
    threads = [threading.Thread(target=call) for call in calls]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - started


def hardware() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), platform.processor())
    mem_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in line))
    import uvicorn

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024**2, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "uvicorn": uvicorn.__version__,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--jobs", type=int, default=24)
    parser.add_argument("--timeout", type=float, default=900, help="seconds the jobs may take to end")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "api_load.json"))
    args = parser.parse_args()
    started = time.monotonic()
    info = hardware()

    with tempfile.TemporaryDirectory(prefix="vsr-load-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        videos = [small_video(Path(tmp) / f"clip{i}.mp4", seconds=1) for i in range(args.jobs)]
        server = ServerProcess(data)
        peak = {"rss": 0}
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.25):
                try:
                    peak["rss"] = max(peak["rss"], rss_kib(server.proc.pid))
                except OSError:
                    return

        threading.Thread(target=sample, daemon=True).start()
        tally = Tally()
        job_ids: list[str] = []

        # 1. concurrent uploads + submissions
        def submit(i: int) -> None:
            client = Client(server.url, retries=0, timeout=60)

            def call() -> str | None:
                key = client.upload(videos[i], key=f"inputs/load/{i}.mp4")
                job = client.submit(key, segment_time=60, model="bicubic")
                with tally.lock:
                    job_ids.append(job.job_id)
                return None

            tally.timed("upload_and_submit", call)

        submit_started = time.monotonic()
        submit_wall = run_together([lambda i=i: submit(i) for i in range(args.jobs)])

        # 2. status reads and invalid requests, while the jobs run
        counter = itertools.count()
        invalid = itertools.cycle(INVALID)

        def reader() -> None:
            # http.client, not requests: the client's own CPU time (16 threads, one GIL) would
            # otherwise be counted as server latency.
            conn = http.client.HTTPConnection(*host_port(server.url), timeout=30)
            while (n := next(counter)) < args.reads:
                if n % 10 == 9:
                    case = next(invalid)
                    tally.timed("invalid_request", lambda case=case: check_invalid(conn, case))
                job_id = job_ids[n % len(job_ids)] if job_ids else "none"
                tally.timed("status_read", lambda job_id=job_id: check_status(conn, job_id))
            conn.close()

        reads_wall = run_together([reader] * args.clients)

        # 3. sequential SDK calls on one keep-alive session
        sdk = Client(server.url, retries=0)
        for _ in range(50):
            tally.timed("sdk_sequential_status", lambda: sdk.status(job_ids[0]) and None)

        # 4. every job to its end
        states: dict[str, str] = {}
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            states = {j: server.get(f"/jobs/{j}")["state"] for j in job_ids}
            if all(s in ("succeeded", "failed", "cancelled") for s in states.values()):
                break
            time.sleep(1)
        jobs_wall = time.monotonic() - submit_started
        hwm = rss_kib(server.proc.pid, "VmHWM")
        stop.set()
        server.stop()
        orphans = leftover_workers(data)

    outcome = {s: sum(1 for v in states.values() if v == s) for s in sorted(set(states.values()))}
    result = {
        "benchmark": "local API server under load over loopback (vsr-local serve: uvicorn + the Lambda handler)",
        "hardware": info,
        "clients": args.clients,
        "status_read": percentiles(tally.times.get("status_read", [])),
        "invalid_request": percentiles(tally.times.get("invalid_request", [])),
        "upload_and_submit": percentiles(tally.times.get("upload_and_submit", [])),
        "sdk_sequential_status": percentiles(tally.times.get("sdk_sequential_status", [])),
        "reads_per_second": round(len(tally.times.get("status_read", [])) / reads_wall, 1),
        "submit_wall_seconds": round(submit_wall, 2),
        "jobs": {"submitted": len(job_ids), "outcome": outcome, "all_ended_after_seconds": round(jobs_wall, 1)},
        "errors": len(tally.errors),
        "error_samples": tally.errors[:10],
        "resets": tally.resets,
        "server_rss_mib": {"peak_sampled": round(peak["rss"] / 1024, 1), "high_water_mark": round(hwm / 1024, 1)},
        "worker_processes_left": len(orphans),
        "bench_seconds": round(time.monotonic() - started, 1),
    }
    result["targets_met"] = {
        "no_errors": result["errors"] == 0,
        "no_resets": result["resets"] == 0,
        "status_p99_under_100ms": result["status_read"].get("p99_ms", 1e9) < 100,
        "all_jobs_succeeded": outcome == {"succeeded": args.jobs},
    }
    text = json.dumps(result, indent=2)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
