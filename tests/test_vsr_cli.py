"""The ``vsr`` command as a user runs it: version, exit codes, pipes, progress, the one-shot upscale."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from importlib.metadata import version
from io import StringIO
from pathlib import Path

import pytest

from tests.api.media import ffprobe_video, small_video
from tests.conftest import free_port
from vsr_api.local.server import LocalApi, LocalServer
from vsr_client.api_models import JobProgress, JobStatus, StageProgress
from vsr_client.contract import ERROR_EXIT_CODES, ErrorCode, ExitCode
from vsr_client.job_progress import JobProgressDisplay

VSR = [sys.executable, "-m", "vsr_client.cli"]


def vsr(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("VSR_API_")}
    return subprocess.run([*VSR, *args], capture_output=True, text=True, env={**base, **(env or {})}, **kwargs)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_video(tmp_path_factory.mktemp("media") / "clip.mp4")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, clip: Path):
    data = tmp_path_factory.mktemp("data")
    shutil.copy(clip, data / "xxxx.mp4")
    srv = LocalServer(LocalApi(data, jobs=2), "127.0.0.1", 0)
    srv.start_background()
    yield srv
    srv.close()


def submit_quick(server: LocalServer) -> str:
    out = vsr("--url", server.url, "submit", "xxxx.mp4", "--model", "bicubic", check=True).stdout
    return json.loads(out)["job_id"]


# -- one exit-code table ------------------------------------------------------------------------


def test_every_error_code_has_an_exit_code() -> None:
    assert set(ErrorCode) - set(ERROR_EXIT_CODES) == set()


def test_version_prints_the_installed_package_version() -> None:
    proc = vsr("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"vsr {version('vsr-client')}"


def test_no_url_exits_64_and_names_the_option_and_the_variable() -> None:
    proc = vsr("jobs")
    assert proc.returncode == ExitCode.USAGE == 64
    assert (
        proc.stderr.strip() == "vsr: error [invalid_argument]: no API URL: pass --url or set $VSR_API_URL (field url)"
    )


def test_unreachable_server_exits_69() -> None:
    proc = vsr("--url", f"http://127.0.0.1:{free_port()}", "--retries", "0", "jobs")
    assert proc.returncode == ExitCode.UNAVAILABLE == 69
    assert proc.stderr.startswith("vsr: error [unreachable]: GET http://127.0.0.1:") and "Traceback" not in proc.stderr


def test_bad_arguments_exit_64_with_one_line() -> None:
    proc = vsr("--url", "http://127.0.0.1:9", "submit", "xxxx.mp4", "--scale", "3")
    assert proc.returncode == 64
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("vsr: error [invalid_argument]: argument --scale")


@pytest.mark.parametrize(
    ("args", "code", "exit_code"),
    [
        (["status", "no-such-job"], "job_not_found", 66),
        (["submit", "missing.mp4"], "input_not_found", 66),
        (["submit", "jobs/x/manifest.json"], "key_reserved", 64),
        (["submit", "xxxx.mp4", "--segment-time", "0"], "invalid_segment_time", 64),
    ],
)
def test_api_errors_exit_with_the_tables_code(server: LocalServer, args: list[str], code: str, exit_code: int) -> None:
    proc = vsr("--url", server.url, "--retries", "0", *args)
    assert (proc.returncode, proc.stderr.split("]")[0]) == (exit_code, f"vsr: error [{code}")


def test_status_into_a_closed_pipe_stops_quietly(server: LocalServer) -> None:
    job_id = submit_quick(server)
    proc = subprocess.Popen(
        [*VSR, "--url", server.url, "status", job_id], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # like `vsr status ID | head -0`: the reader is gone before vsr writes
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == ExitCode.BROKEN_PIPE == 141
    assert err == ""
    vsr("--url", server.url, "cancel", job_id)  # free the server's queue for the next tests


# -- progress -----------------------------------------------------------------------------------


def status_at(frames: int, segments_done: int, state: str = "running") -> JobStatus:
    return JobStatus(
        job_id="j1",
        state=state,
        created_at="2026-01-01T00:00:00Z",
        key="xxxx.mp4",
        scale=2,
        task="inference",
        env="spot",
        model="realesr-animevideov3",
        segment_time=1,
        segments=2,
        output_key="outputs/j1/xxxx_x2.mp4",
        progress=JobProgress(
            split=StageProgress(state="succeeded", done=1),
            upscale=StageProgress(state=state, done=segments_done, total=2, frames_done=frames, frames_total=50),
        ),
    )


def test_progress_on_a_terminal_is_a_bar_with_frames_segments_and_eta() -> None:
    stream = StringIO()
    display = JobProgressDisplay(stream, tty=True)
    for frames, segments in ((0, 0), (10, 0), (25, 1)):
        display.update(status_at(frames, segments))
        time.sleep(0.05)
    display.close()
    last = stream.getvalue().split("\r")[-1]
    assert last.startswith("running  50%|") and "25/50 frames, 1/2 segments, merge pending [" in last
    eta = last.split("ETA ")[1]
    assert eta[:5] != "?]" and eta[2] == ":"  # mm:ss, from the frame rate seen


def test_progress_off_a_terminal_is_plain_lines_with_an_eta() -> None:
    stream = StringIO()
    display = JobProgressDisplay(stream, tty=False)
    display.update(status_at(0, 0))
    time.sleep(0.05)
    display.update(status_at(25, 1))
    display.update(status_at(25, 1))  # unchanged: no new line
    display.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and len(lines) == 2
    assert lines[1].startswith("j1: running | split succeeded | upscale 1/2 segments, 25/50 frames, ETA ")


def test_wait_on_a_real_terminal_draws_the_bar(server: LocalServer) -> None:
    job_id = submit_quick(server)
    master, terminal = pty.openpty()  # vsr's stdout and stderr on a 100-column pseudo-terminal
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    command = [*VSR, "--url", server.url, "wait", job_id, "--interval", "0.2"]
    proc = subprocess.Popen(command, stdout=terminal, stderr=terminal, close_fds=True)
    os.close(terminal)
    output = b""
    while select.select([master], [], [], 120)[0]:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: vsr exited and the terminal closed
            break
        if not chunk:
            break
        output += chunk
    os.close(master)
    code = proc.wait(timeout=30)
    text = output.decode(errors="replace")
    assert code == 0, text
    assert "succeeded 100%|" in text and "50/50 frames, 1/1 segments, merge succeeded" in text and "ETA" in text
    assert '"state": "succeeded"' in text


# -- the one-shot upscale -----------------------------------------------------------------------


def test_upscale_through_the_api_uploads_follows_and_downloads(server: LocalServer, clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "clip_x2.mp4"
    proc = vsr("--url", server.url, "upscale", str(clip), "-o", str(out), "--model", "bicubic", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    assert ffprobe_video(out) == {"width": 128, "height": 96, "frames": 50}
    assert "succeeded" in proc.stderr.splitlines()[-1]


def test_upscale_without_a_url_runs_on_this_machine_in_the_container_asked_for(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "clip_x2.mkv"
    proc = vsr("upscale", str(clip), "-o", str(out), "--model", "bicubic", "-q", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert ffprobe_video(out) == {"width": 128, "height": 96, "frames": 50}
    fmt = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=format_name", "-of", "csv=p=0", str(out)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert fmt.strip().strip('"') == "matroska,webm"


def test_upscale_without_a_url_or_the_worker_package_says_what_to_install(clip: Path, tmp_path: Path) -> None:
    # The worker package hidden (None in sys.modules makes its import fail), as on a client-only install.
    code = "import sys; sys.modules['vsr_worker'] = None; from vsr_client.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VSR_API_")}
    proc = subprocess.run(
        [sys.executable, "-c", code, "upscale", str(clip), "-o", str(tmp_path / "x.mp4")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == ExitCode.UNAVAILABLE == 69
    assert proc.stderr.startswith("vsr: error [engine_unavailable]: no API URL (--url or $VSR_API_URL)")
    assert "install vsr-worker" in proc.stderr and not (tmp_path / "x.mp4").exists()


def test_upscale_refuses_an_output_extension_that_names_no_container(clip: Path, tmp_path: Path) -> None:
    # Refused before anything is sent: the URL has no server, so an attempt would exit 69.
    proc = vsr("--url", f"http://127.0.0.1:{free_port()}", "upscale", str(clip), "-o", str(tmp_path / "out.avi"))
    assert proc.returncode == 64
    assert proc.stderr.startswith("vsr: error [invalid_argument]: output 'out.avi': the extension decides")
    assert list(tmp_path.iterdir()) == []
