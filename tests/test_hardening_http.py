"""Fault injection on the local server's HTTP side, over real sockets on loopback.

Each test sends what a careless or hostile client sends (half a request, an unknown method, a
reused or oversized upload, a key no file system takes) and checks the answer, that nothing
was stored or submitted, and that the server still answers everyone else.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import statistics
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.api.local_http import (
    host_port,
    parse_response,
    raw_request,
    read_all,
    request_bytes,
)
from tests.api.media import ffmpeg, small_video
from vsr_api.local.server import HttpLimits, LocalApi, LocalServer
from vsr_client.client import Client
from vsr_client.errors import BadRequest

LIMITS = HttpLimits(header_timeout=1.0, body_idle_timeout=1.0)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_video(tmp_path_factory.mktemp("media") / "clip.mp4")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, clip: Path):
    data = tmp_path_factory.mktemp("data")
    (data / "inputs").mkdir()
    (data / "inputs" / "clip.mp4").write_bytes(clip.read_bytes())
    srv = LocalServer(LocalApi(data, concurrent_jobs=2), "127.0.0.1", 0, LIMITS)
    srv.start_background()
    yield srv
    srv.close()


def jobs_on_disk(srv: LocalServer) -> set[str]:
    return {p.stem for p in (srv.api.data_dir / ".vsr-api" / "jobs").glob("*.json")}


# -- methods ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PATCH", "/jobs", "GET, HEAD, POST"),
        ("PUT", "/jobs", "GET, HEAD, POST"),
        ("OPTIONS", "/", "GET, HEAD, POST"),  # the web page's GET and the API's POST
        ("TRACE", "/jobs/20260101T000000Z-00000000", "DELETE, GET, HEAD"),
        ("DELETE", "/uploads", "POST"),
        ("BREW", "/files/inputs/clip.mp4", "GET, HEAD, PUT"),
        ("PATCH", "/no/such/route", "DELETE, GET, HEAD, POST"),
    ],
)
def test_every_unserved_method_gets_a_json_405_with_allow(
    server: LocalServer, method: str, path: str, allow: str
) -> None:
    response = raw_request(server.url, request_bytes(method, path))
    assert response.status == 405, response.body
    assert response.headers["content-type"] == "application/json"
    assert response.headers["allow"] == allow
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_a_request_that_is_not_http_gets_a_json_400(server: LocalServer) -> None:
    response = raw_request(server.url, b"\x16\x03\x01 hello there\r\n\r\n")  # e.g. TLS to a plain port
    assert (response.status, response.json()["error"]["code"]) == (400, "invalid_argument")


def test_an_unknown_path_with_a_served_method_is_still_404(server: LocalServer) -> None:
    response = raw_request(server.url, request_bytes("GET", "/no/such/route"))
    assert response.status == 404 and response.json()["error"]["code"] == "route_not_found"


# -- slow and half-sent requests -------------------------------------------------------------


def test_half_sent_headers_are_cut_off_and_hold_nothing(server: LocalServer) -> None:
    sockets = []
    for i in range(40):  # the old server gave each one a thread, for ever
        sock = socket.create_connection(host_port(server.url))
        sock.sendall(b"GET /jobs HTTP/1.1\r\nHost: x\r\n" if i % 2 else b"")
        sockets.append(sock)
    started = time.monotonic()
    assert requests.get(server.url + "/jobs", timeout=5).status_code == 200  # others are served meanwhile
    deadline = started + LIMITS.header_timeout + 4
    answers = [read_all(sock, timeout=max(0.01, deadline - time.monotonic())) for sock in sockets]
    elapsed = time.monotonic() - started
    for sock in sockets:
        sock.close()
    assert elapsed < LIMITS.header_timeout + 4
    for answer in answers:
        response = parse_response(answer)
        assert (response.status, response.json()["error"]["code"]) == (408, "request_timeout")


def test_a_trickled_request_gets_no_more_than_the_header_deadline(server: LocalServer) -> None:
    with socket.create_connection(host_port(server.url)) as sock:
        started = time.monotonic()
        closed = False
        for byte in b"GET /jobs HTTP/1.1\r\nHost: trickle\r\nX-Slow: " + b"a" * 40:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.1)  # each byte resets no timer: the deadline is for the whole header
            if time.monotonic() - started > LIMITS.header_timeout + 3:
                break
        answer = read_all(sock, timeout=3)
    assert closed or answer.startswith(b"HTTP/1.1 408")
    assert time.monotonic() - started < LIMITS.header_timeout + 4


def test_a_body_that_stops_half_way_gets_408_and_stores_nothing(server: LocalServer) -> None:
    target = requests.post(server.url + "/uploads", json={"key": "inputs/half.mp4", "size": 1000}, timeout=5).json()
    path = target["url"][len(server.url) :]
    with socket.create_connection(host_port(server.url)) as sock:
        host = server.url.split("//", 1)[1]
        sock.sendall(f"PUT {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 1000\r\n\r\n".encode() + b"x" * 10)
        response = parse_response(read_all(sock, timeout=LIMITS.body_idle_timeout + 4))
    assert (response.status, response.json()["error"]["code"]) == (408, "request_timeout")
    folder = server.api.data_dir / "inputs"
    assert not (folder / "half.mp4").exists()
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".half.mp4")]  # no temporary file left
    # The URL was not spent by the broken transfer: the SDK's retry of it works.
    assert requests.put(target["url"], data=b"y" * 1000, timeout=5).status_code == 200
    assert (folder / "half.mp4").read_bytes() == b"y" * 1000


def test_an_api_body_that_stops_half_way_gets_408(server: LocalServer) -> None:
    with socket.create_connection(host_port(server.url)) as sock:
        host = server.url.split("//", 1)[1].encode()
        head = b"POST /jobs HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n" % host
        head += b"Content-Length: 200\r\n\r\n"
        sock.sendall(head + b"{")
        response = parse_response(read_all(sock, timeout=LIMITS.body_idle_timeout + 4))
    assert (response.status, response.json()["error"]["code"]) == (408, "request_timeout")


# -- connections ------------------------------------------------------------------------------


def test_keep_alive_requests_do_not_wait_for_delayed_acks(server: LocalServer) -> None:
    """Headers and body in two small writes without TCP_NODELAY cost ~40 ms per keep-alive
    request (Nagle + the client's delayed ACK); the SDK's Session paid it on every call."""
    host, port = host_port(server.url)
    conn = http.client.HTTPConnection(host, port, timeout=5)
    times = []
    for _ in range(30):
        started = time.perf_counter()
        conn.request("GET", "/jobs/20260101T000000Z-00000000")
        assert conn.getresponse().read()
        times.append(time.perf_counter() - started)
    conn.close()
    client = Client(server.url, retries=0)
    sdk_times = []
    for _ in range(20):
        started = time.perf_counter()
        client.jobs(limit=1)
        sdk_times.append(time.perf_counter() - started)
    assert statistics.median(times) < 0.025, times
    assert statistics.median(sdk_times) < 0.025, sdk_times


def _listen_backlog(port: int) -> int:
    """The listening socket's backlog as the kernel reports it (``ss``: Send-Q of a LISTEN row)."""
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], check=True, capture_output=True, text=True).stdout
    return int(out.split()[2])


@pytest.mark.skipif(not os.path.exists("/usr/bin/ss") and not os.path.exists("/bin/ss"), reason="needs ss")
def test_the_listen_backlog_holds_a_burst_of_clients(server: LocalServer) -> None:
    assert _listen_backlog(host_port(server.url)[1]) >= 128
    results: list[object] = []

    def client() -> None:
        try:
            with requests.Session() as session:
                results.extend(session.get(server.url + "/jobs?limit=1", timeout=10).status_code for _ in range(3))
        except requests.RequestException as exc:
            results.append(exc)

    threads = [threading.Thread(target=client) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 192


# -- uploads ----------------------------------------------------------------------------------


def test_an_upload_url_works_once_and_takes_at_most_its_declared_size(server: LocalServer) -> None:
    folder = server.api.data_dir / "inputs"

    def target(name: str) -> str:
        body = {"key": f"inputs/{name}", "size": 100}
        return requests.post(server.url + "/uploads", json=body, timeout=5).json()["url"]

    url = target("once.mp4")
    too_big = requests.put(url, data=b"a" * 101, timeout=5)
    assert (too_big.status_code, too_big.json()["error"]["code"]) == (413, "body_too_large")
    assert not (folder / "once.mp4").exists()
    assert requests.put(url, data=b"b" * 100, timeout=5).status_code == 200
    again = requests.put(url, data=b"c" * 50, timeout=5)
    assert (again.status_code, again.json()["error"]["code"]) == (401, "unauthorized")
    assert (folder / "once.mp4").read_bytes() == b"b" * 100

    # Without Content-Length (chunked), the limit holds while the body streams.
    chunked = requests.put(target("chunked.mp4"), data=iter([b"d" * 60, b"d" * 60]), timeout=5)
    assert (chunked.status_code, chunked.json()["error"]["code"]) == (413, "body_too_large")
    assert not [p for p in folder.iterdir() if "chunked" in p.name]


# -- the job store ------------------------------------------------------------------------------


def test_a_damaged_job_record_is_skipped_and_logged(server: LocalServer, caplog: pytest.LogCaptureFixture) -> None:
    jobs = server.api.data_dir / ".vsr-api" / "jobs"
    good = requests.post(server.url + "/jobs", json={"key": "inputs/clip.mp4", "model": "bicubic"}, timeout=10).json()[
        "job_id"
    ]
    text = (jobs / f"{good}.json").read_text()
    damaged = "20200101T000000Z-0badf00d"
    (jobs / f"{damaged}.json").write_text(text[: len(text) // 2])  # truncated, as by a full disk
    try:
        with caplog.at_level(logging.ERROR, logger="vsr_api.local.file_job_store"):
            listing = requests.get(server.url + "/jobs?limit=100", timeout=10)
        assert listing.status_code == 200
        assert good in {job["job_id"] for job in listing.json()["jobs"]}
        assert any(r.getMessage() == "damaged job record skipped" for r in caplog.records)
        one = requests.get(f"{server.url}/jobs/{damaged}", timeout=10)
        assert one.status_code == 500 and one.json()["error"]["code"] == "internal_error"
        assert str(server.api.data_dir) not in one.text
    finally:
        (jobs / f"{damaged}.json").unlink()


# -- bad keys: always a 4xx, never a stored file or a job ------------------------------------------

SURROGATE = "inputs/\ud800.mp4"


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/jobs", {"key": SURROGATE}, 400, "invalid_key"),
        ("/jobs", {"key": "inputs/clip.mp4", "output_key": "x\ud800.mp4"}, 400, "invalid_output_key"),
        ("/jobs", {"key": "inputs/clip.mp4", "idempotency_key": "k\udfff"}, 400, "invalid_argument"),
        ("/jobs", {"key": "inputs/clip.mp4", "\ud800": 1}, 400, "unknown_field"),
        ("/uploads", {"key": SURROGATE}, 400, "invalid_key"),
        ("/uploads", {"filename": "a.mp4", "content_type": "video/\ud800"}, 400, "invalid_argument"),
        ("/jobs", {"key": "inputs/" + "n" * 300 + ".mp4"}, 400, "invalid_key"),
        ("/jobs", {"key": "inputs/clip.mp4", "output_key": "o" * 300 + ".mp4"}, 400, "invalid_output_key"),
        ("/uploads", {"key": "inputs/" + "n" * 300 + ".mp4"}, 400, "invalid_key"),
        ("/jobs", {"key": "/".join(["d" * 200] * 6) + ".mp4"}, 400, "invalid_key"),
        ("/jobs", {"key": "inputs/a\x07b.mp4"}, 400, "invalid_key"),
        ("/jobs", {"key": "inputs/escape.mp4"}, 400, "invalid_key"),
        ("/jobs", {"key": "inputs/clip.mp4", "output_key": "linked/x.mp4"}, 400, "invalid_output_key"),
        ("/uploads", {"key": "inputs/linked/x.mp4"}, 400, "invalid_key"),
    ],
)
def test_bad_keys_are_4xx_with_a_code_and_nothing_is_made(
    server: LocalServer, tmp_path: Path, path: str, body: dict, status: int, code: str
) -> None:
    data = server.api.data_dir
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.mp4").write_bytes((data / "inputs" / "clip.mp4").read_bytes())
    links = [data / "inputs" / "escape.mp4", data / "outputs" / "linked", data / "inputs" / "linked"]
    (data / "outputs").mkdir(exist_ok=True)
    links[0].symlink_to(outside / "secret.mp4")
    links[1].symlink_to(outside)
    links[2].symlink_to(outside)
    before = jobs_on_disk(server)
    try:
        # json.dumps writes a lone surrogate as the escape "\ud800", which JSON decoders accept.
        response = requests.post(server.url + path, data=json.dumps(body), timeout=10)
    finally:
        for link in links:
            link.unlink()
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert jobs_on_disk(server) == before
    assert sorted(p.name for p in outside.iterdir()) == ["secret.mp4"]
    assert str(data) not in response.text and str(tmp_path) not in response.text


# -- too many segments ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid video of 10,001 s: 16x16 at 1 fps (10,001 frames, under half a second to make)."""
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "color=c=gray:size=16x16:rate=1", "-t", "10001",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(path),
    )  # fmt: skip
    return path


class CountingSession(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        self.sent.append(f"{method} {url}")
        return super().request(method, url, *args, **kwargs)


def test_more_segments_than_batch_allows_is_422_naming_a_segment_time_that_fits(
    server: LocalServer, long_video: Path
) -> None:
    (server.api.data_dir / "inputs" / "long.mp4").write_bytes(long_video.read_bytes())
    before = jobs_on_disk(server)
    session = CountingSession()
    client = Client(server.url, retries=4, backoff=0.01, session=session)
    with pytest.raises(BadRequest) as refused:
        client.submit("inputs/long.mp4", segment_time=1, model="bicubic")
    assert (refused.value.status, refused.value.code, refused.value.field) == (422, "too_many_segments", "segment_time")
    assert len(session.sent) == 1  # a 4xx is not retried
    assert jobs_on_disk(server) == before  # nothing recorded, nothing run
    suggested = float(refused.value.message.rsplit("use segment_time ", 1)[1].split()[0])
    job = client.submit("inputs/long.mp4", segment_time=suggested, model="bicubic")
    assert job.segments <= 10_000
    client.cancel(job.job_id)


# -- failures as a user sees them -------------------------------------------------------------------


def test_a_failed_job_says_why_without_a_path_of_the_server(server: LocalServer, clip: Path) -> None:
    data = server.api.data_dir
    broken = bytearray(clip.read_bytes())
    moov = broken.find(b"moov")
    mdat = broken.find(b"mdat")
    assert 0 < moov < mdat  # faststart: the API's header probe sees an intact moov
    broken[mdat + 8 :] = bytes(len(broken) - mdat - 8)  # every coded frame zeroed
    (data / "inputs" / "zeroed.mp4").write_bytes(bytes(broken))
    accepted = requests.post(
        server.url + "/jobs", json={"key": "inputs/zeroed.mp4", "model": "bicubic"}, timeout=10
    ).json()
    deadline = time.monotonic() + 60
    while (status := requests.get(accepted["status_url"], timeout=10).json())["state"] not in ("failed", "succeeded"):
        assert time.monotonic() < deadline, status
        time.sleep(0.3)
    assert status["state"] == "failed"
    reason = status["failure_reason"]
    assert reason.startswith("[corrupt_input] "), reason
    listing = requests.get(server.url + "/jobs?limit=100", timeout=10).text
    for text in (reason, json.dumps(status), listing):
        assert str(data) not in text and "/logs" not in text and "/tmp" not in text
