"""``/files/<key>`` of the local server as a browser and HTTP clients use it, over real sockets:
the container's Content-Type, Range (206, 416), HEAD, and presigned URLs on the host the client
used. Expectations come from RFC 9110 and the bytes on disk, read with http.client."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.api.media import small_video
from vsr_api.local.request_origin import origin_for
from vsr_api.local.server import LocalApi, LocalServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    data = tmp_path_factory.mktemp("data")
    small_video(data / "clip.mp4")
    srv = LocalServer(LocalApi(data, jobs=1), "127.0.0.1", 0)
    srv.start_background()
    yield srv
    srv.close()


def request(
    server: LocalServer, method: str, url: str, headers: dict[str, str] | None = None, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request to the server's socket, whatever host ``url`` (or a ``Host`` header) names."""
    parts = urlsplit(url)
    host, port = urlsplit(server.url).hostname, urlsplit(server.url).port
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def download(server: LocalServer, key: str, headers: dict[str, str] | None = None, method: str = "GET"):
    return request(server, method, server.api.storage.download_url(key), headers)


@pytest.mark.parametrize(
    ("key", "content_type"),
    [
        ("clip.mp4", "video/mp4"),
        ("films/clip.MOV", "video/quicktime"),
        ("clip.mkv", "video/x-matroska"),
        ("notes.json", "application/octet-stream"),
        ("noext", "application/octet-stream"),
    ],
)
def test_a_download_carries_its_containers_content_type(server: LocalServer, key: str, content_type: str) -> None:
    path = server.api.data_dir / key
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes((server.api.data_dir / "clip.mp4").read_bytes())
    status, headers, body = download(server, key)
    assert status == 200 and headers["content-type"] == content_type
    assert headers["x-content-type-options"] == "nosniff" and body == path.read_bytes()


def test_range_answers_206_with_exactly_the_bytes_asked_for(server: LocalServer) -> None:
    data = (server.api.data_dir / "clip.mp4").read_bytes()
    size = len(data)
    for header, first, last in [
        ("bytes=100-199", 100, 199),
        ("bytes=1000-", 1000, size - 1),
        ("bytes=-10", size - 10, size - 1),
    ]:
        status, headers, body = download(server, "clip.mp4", {"Range": header})
        assert status == 206, header
        assert headers["content-range"] == f"bytes {first}-{last}/{size}"
        assert body == data[first : last + 1] and int(headers["content-length"]) == last - first + 1


def test_head_answers_length_and_accept_ranges_without_a_body(server: LocalServer) -> None:
    size = (server.api.data_dir / "clip.mp4").stat().st_size
    status, headers, body = download(server, "clip.mp4", method="HEAD")
    assert (status, body) == (200, b"")
    assert headers["content-length"] == str(size) and headers["accept-ranges"] == "bytes"
    assert headers["content-type"] == "video/mp4"


def test_a_range_past_the_end_is_416_naming_the_size(server: LocalServer) -> None:
    size = (server.api.data_dir / "clip.mp4").stat().st_size
    status, headers, body = download(server, "clip.mp4", {"Range": f"bytes={size}-"})
    assert status == 416 and headers["content-range"] == f"bytes */{size}"
    assert json.loads(body)["error"]["code"] == "range_not_satisfiable"
    # A Range that cannot be parsed is ignored (RFC 9110, 14.2): the whole file.
    status, headers, body = download(server, "clip.mp4", {"Range": "pages=1-2"})
    assert status == 200 and len(body) == size


def upload_url(server: LocalServer, host: str) -> str:
    body = json.dumps({"filename": "a.mp4", "size": 4}).encode()
    status, _, answer = request(server, "POST", "/uploads", {"Host": host, "Content-Type": "application/json"}, body)
    assert status == 201, answer
    return json.loads(answer)["url"]


def test_presigned_urls_name_the_loopback_host_the_client_used(server: LocalServer) -> None:
    port = urlsplit(server.url).port
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", f"localhost:{port + 1}"):
        url = upload_url(server, host)
        assert url.startswith(f"http://{host}/files/inputs/"), (host, url)
    # The URL works through that host name, once, and only as signed.
    url = upload_url(server, f"localhost:{port}")
    forged = url.replace("signature=", "signature=0")
    assert request(server, "PUT", forged, {"Host": f"localhost:{port}"}, b"abcd")[0] == 401
    assert request(server, "PUT", url, {"Host": f"localhost:{port}"}, b"abcd")[0] == 200


def test_a_server_without_an_api_key_refuses_a_host_that_is_not_loopback(server: LocalServer) -> None:
    # DNS rebinding: a page whose name now resolves to 127.0.0.1 reaches this port as "same
    # origin", but its requests still carry its own name in Host. Nothing it asks is answered.
    before = sorted(p.relative_to(server.api.data_dir) for p in server.api.data_dir.rglob("*"))
    port = urlsplit(server.url).port
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.nip.io", "user@localhost", "localhost/x", ""):
        for method, path, body in (("GET", "/jobs", None), ("POST", "/uploads", b'{"filename": "a.mp4", "size": 4}')):
            sent = {"Host": host, "Content-Type": "application/json"}
            status, _, answer = request(server, method, path, sent, body)
            assert status == 403 and json.loads(answer)["error"]["code"] == "host_not_allowed", (host, answer)
        status, _, answer = request(server, "GET", server.api.storage.download_url("clip.mp4"), {"Host": host})
        assert status == 403, host
    assert sorted(p.relative_to(server.api.data_dir) for p in server.api.data_dir.rglob("*")) == before


def test_a_server_without_an_api_key_refuses_pages_of_other_sites(server: LocalServer) -> None:
    # Cross-site request forgery: a page anywhere may POST a "simple" (text/plain) request to
    # 127.0.0.1, and the API reads such a body as JSON. The browser's Origin header gives it away.
    body = b'{"filename": "a.mp4", "size": 4}'
    for origin in ("https://evil.example", "http://127.0.0.1.evil.example", "null"):
        status, _, answer = request(server, "POST", "/uploads", {"Origin": origin, "Content-Type": "text/plain"}, body)
        assert status == 403 and json.loads(answer)["error"]["code"] == "host_not_allowed", (origin, answer)
    port = urlsplit(server.url).port
    for origin in (f"http://127.0.0.1:{port}", f"http://localhost:{port}", "http://[::1]:3000"):
        assert request(server, "POST", "/uploads", {"Origin": origin, "Content-Type": "text/plain"}, body)[0] == 201


def test_a_host_that_is_not_loopback_gets_the_address_the_server_is_bound_to() -> None:
    # A server with an API key answers any Host; its URLs then name the address it is bound to.
    for host in ("evil.example", "evil.example:80", "user@localhost", "localhost/x", ""):
        assert origin_for(host, "http://127.0.0.1:8080") == "http://127.0.0.1:8080", host


def test_a_server_bound_to_a_name_or_every_interface_trusts_that_name_or_any() -> None:
    # The rule where no loopback name is involved: the bound host itself, or any host when the
    # server listens on every interface (its own address, 0.0.0.0, is no use to a client).
    assert origin_for("box.lan:8080", "http://box.lan:8080") == "http://box.lan:8080"
    assert origin_for("box.lan:8080", "http://10.1.2.3:8080") == "http://10.1.2.3:8080"
    assert origin_for("box.lan:8080", "http://0.0.0.0:8080") == "http://box.lan:8080"
    assert origin_for("[fd00::1]:8080", "http://[::]:8080") == "http://[fd00::1]:8080"
    assert origin_for("box.lan:8080/x", "http://0.0.0.0:8080") == "http://0.0.0.0:8080"  # not a host
