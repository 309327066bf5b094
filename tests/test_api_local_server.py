"""Through the local server: the documented cURL, Python, Java and PHP examples, the SDK and the CLI."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.api.media import ffprobe_video, small_video
from vsr_api.local.server import LocalApi, LocalServer
from vsr_client import cli
from vsr_client.client import Client
from vsr_client.errors import BadRequest, JobFailed, NotFound, Unauthorized

DOCS = Path(__file__).resolve().parents[1] / "docs" / "api.md"
DOC_URL = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/"

pytestmark = pytest.mark.slow


def doc_example(name: str) -> str:
    """The code block after ``<!-- example: NAME -->`` in docs/api.md."""
    text = DOCS.read_text()
    match = re.search(rf"<!-- example: {name} -->\n```\w+\n(.*?)```", text, re.S)
    assert match, f"docs/api.md has no {name} example"
    return match.group(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("data")
    clip = small_video(tmp_path_factory.mktemp("media") / "clip.mp4")
    (data / "inputs").mkdir()
    shutil.copy(clip, data / "inputs" / "video.mp4")
    shutil.copy(clip, data / "xxxx.mp4")  # the seed's examples name an object at the bucket root
    srv = LocalServer(LocalApi(data, jobs=2), "127.0.0.1", 0)
    srv.start_background()
    yield srv
    srv.close()


def wait_done(status_url: str, timeout: float = 240) -> dict:  # a bound: the learned model on a shared machine
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = requests.get(status_url, timeout=5).json()
        if body["state"] in ("succeeded", "failed", "cancelled"):
            return body
        time.sleep(0.3)
    raise AssertionError(f"job not done after {timeout}s: {body}")


def fetch(url: str, dest: Path) -> Path:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    dest.write_bytes(response.content)
    return dest


def test_documented_curl_example_upscales_the_video(server: LocalServer, tmp_path: Path) -> None:
    command = doc_example("curl").replace(DOC_URL, server.url + "/")
    out = subprocess.run(["bash", "-c", command], check=True, capture_output=True, text=True).stdout
    accepted = json.loads(out)
    assert accepted["state"] == "queued" and accepted["segments"] == 1
    status = wait_done(accepted["status_url"])
    assert status["state"] == "succeeded", status["failure_reason"]
    video = ffprobe_video(fetch(status["download_url"], tmp_path / "out.mp4"))
    assert video == {"width": 128, "height": 96, "frames": 50}


def test_documented_python_example_upscales_the_video(server: LocalServer, tmp_path: Path) -> None:
    code = doc_example("python").replace(DOC_URL, server.url + "/")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    accepted = ast.literal_eval(out)  # the example prints a dict
    status = wait_done(accepted["status_url"])
    assert status["state"] == "succeeded", status["failure_reason"]
    assert status["progress"]["upscale"]["frames_done"] == 50
    assert ffprobe_video(fetch(status["download_url"], tmp_path / "out.mp4"))["width"] == 128


OKHTTP_CLASSPATH = "/usr/share/java/okhttp.jar:/usr/share/java/okio.jar"  # Debian's libokhttp-java (3.13)


def accepted_then_cancelled(answer: str) -> dict:
    """The server's answer to an example; its job is cancelled so it does not hold up the queue."""
    accepted = json.loads(answer)
    requests.delete(accepted["status_url"], timeout=5)
    return accepted


@pytest.mark.skipif(
    not (shutil.which("javac") and os.path.exists("/usr/share/java/okhttp.jar")),
    reason="needs javac and Debian's libokhttp-java (scripts/bootstrap.sh installs it)",
)
def test_documented_java_example_compiles_against_okhttp_3_13_and_submits(server: LocalServer, tmp_path: Path) -> None:
    body = doc_example("java").replace(DOC_URL, server.url + "/")
    lines = "".join(f"        {line}\n" for line in body.splitlines())
    source = tmp_path / "Example.java"
    source.write_text(
        "import okhttp3.*;\n\npublic class Example {\n"
        f"    public static void main(String[] args) throws Exception {{\n{lines}    }}\n}}\n"
    )
    javac = ["javac", "-cp", OKHTTP_CLASSPATH, "-d", str(tmp_path), str(source)]
    subprocess.run(javac, check=True, capture_output=True)
    run = subprocess.run(
        ["java", "-cp", f"{tmp_path}:{OKHTTP_CLASSPATH}", "Example"], check=True, capture_output=True, text=True
    )
    accepted = accepted_then_cancelled(run.stdout)
    assert accepted["state"] == "queued" and accepted["segments"] == 1


@pytest.mark.skipif(
    not shutil.which("php") or "curl" not in subprocess.run(["php", "-m"], capture_output=True, text=True).stdout,
    reason="needs php with the curl extension (scripts/bootstrap.sh installs php-cli and php-curl)",
)
def test_documented_php_example_submits(server: LocalServer, tmp_path: Path) -> None:
    script = tmp_path / "example.php"
    script.write_text(doc_example("php").replace(DOC_URL, server.url + "/"))
    run = subprocess.run(["php", str(script)], check=True, capture_output=True, text=True)
    accepted = accepted_then_cancelled(run.stdout)
    assert accepted["state"] == "queued" and accepted["output_key"].endswith("/xxxx_x2.mp4")


def test_sdk_uploads_submits_waits_and_downloads(server: LocalServer, tmp_path: Path) -> None:
    client = Client(server.url, timeout=10)
    key = client.upload(server.api.data_dir / "inputs" / "video.mp4", key="inputs/sdk/clip.mp4")
    assert key == "inputs/sdk/clip.mp4" and (server.api.data_dir / key).is_file()
    job = client.submit(key, scale=4, segment_time=1)
    assert job.segments == 2
    seen: list[str] = []
    final = client.wait(job.job_id, interval=0.3, on_progress=lambda s: seen.append(s.state))
    assert final.state == "succeeded" and seen[-1] == "succeeded"
    assert final.progress.upscale.done == 2 and final.progress.merge.state == "succeeded"
    out = client.download(job.job_id, tmp_path / "x4.mp4")
    assert ffprobe_video(out) == {"width": 256, "height": 192, "frames": 50}
    # inference jobs keep no intermediates
    assert not (server.api.data_dir / "jobs" / job.job_id / "upscaled").exists()


def test_sdk_raises_typed_errors_with_the_api_code(server: LocalServer) -> None:
    client = Client(server.url, timeout=10, retries=0)
    with pytest.raises(NotFound) as missing:
        client.submit("inputs/none.mp4")
    assert (missing.value.code, missing.value.field, missing.value.status) == ("input_not_found", "key", 404)
    with pytest.raises(BadRequest) as bad:
        client.submit("inputs/video.mp4", scale=3)
    assert bad.value.code == "invalid_scale"
    with pytest.raises(NotFound):
        client.status("no-such-job")


def test_cancel_stops_a_running_job(server: LocalServer) -> None:
    client = Client(server.url, timeout=10)
    job = client.submit("inputs/video.mp4", segment_time=1)
    cancelled = client.cancel(job.job_id)
    assert cancelled.state == "cancelled"
    with pytest.raises(JobFailed):
        client.wait(job.job_id, interval=0.2, timeout=30)
    assert client.status(job.job_id).state == "cancelled"
    deadline = time.monotonic() + 10
    while server.api.runner.state(job.job_id) not in ("cancelled", "succeeded") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.api.runner.state(job.job_id) == "cancelled"  # the stage processes were stopped
    assert not (server.api.data_dir / job.output_key).exists()


def test_cli_lists_and_shows_jobs(server: LocalServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--url", server.url, "jobs"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines and all(" | split " in line for line in lines)
    job_id = lines[-1].split(":")[0]
    assert cli.main(["--url", server.url, "status", job_id]) == 0
    assert json.loads(capsys.readouterr().out)["job_id"] == job_id
    assert cli.main(["--url", server.url, "--retries", "0", "status", "nope"]) == 66  # job_not_found
    assert "vsr: error [job_not_found]" in capsys.readouterr().err


def test_server_can_require_an_api_key(tmp_path: Path) -> None:
    srv = LocalServer(LocalApi(tmp_path, api_key="s3cret"), "127.0.0.1", 0)
    srv.start_background()
    try:
        response = requests.get(f"{srv.url}/jobs", timeout=5)
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
        with pytest.raises(Unauthorized):
            Client(srv.url, retries=0).jobs()
        assert Client(srv.url, api_key="s3cret").jobs() == []
        # With a key, any Host is answered (a LAN name, a proxy's): the key guards the server.
        named = requests.get(f"{srv.url}/jobs", headers={"Host": "box.lan:8080", "x-api-key": "s3cret"}, timeout=5)
        assert named.status_code == 200 and named.json()["jobs"] == []
    finally:
        srv.close()
