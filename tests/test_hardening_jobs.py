"""Local jobs and crashes: ``vsr-local serve`` killed mid-job (kill -9, its process group, SIGTERM,
its job process too) leaves no process behind, and a restart on the same data directory resumes
the job from its stored parts to the right result. Also: several jobs at once, and what is
left on disk after a success and after a failed job's retention period.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from tests.api.local_http import ServerProcess, leftover_workers, processes_with_env
from tests.api.media import ffprobe_video, small_video
from vsr_api.local.server import LocalApi, LocalServer

pytestmark = pytest.mark.slow

# 100 frames of 128x96 in 2 segments, a checkpoint part every 10 frames: long enough to be
# caught mid-segment, short enough to finish in seconds with the bicubic model.
FRAMES, SEGMENT_TIME, PART_FRAMES = 100, 2, 10
SERVER_ENV = {"VSR_CHECKPOINT_FRAMES": str(PART_FRAMES)}


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_video(tmp_path_factory.mktemp("media") / "clip.mp4", seconds=FRAMES / 25, size="128x96")


@pytest.fixture()
def data(tmp_path: Path, video: Path):
    data = tmp_path / "data"
    (data / "inputs").mkdir(parents=True)
    (data / "inputs" / "clip.mp4").write_bytes(video.read_bytes())
    yield data
    # Whatever a failed test left running goes (found the same way the assertions look).
    for pid in processes_with_env("VSR_LOCAL_DATA_DIR", str(data.resolve())):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture()
def start(data: Path):
    """Start ``vsr-local serve`` on the test's data directory; every one is stopped at the end."""
    started: list[ServerProcess] = []

    def start_server() -> ServerProcess:
        started.append(ServerProcess(data, "-c", "1", "-j", "1", env=SERVER_ENV))
        return started[-1]

    yield start_server
    for server in started:
        if server.proc.poll() is None:
            server.stop(signal.SIGKILL)


def submit(url: str, **fields) -> dict:
    body = {"key": "inputs/clip.mp4", "model": "bicubic", "segment_time": SEGMENT_TIME, **fields}
    response = requests.post(url + "/jobs", json=body, timeout=30)
    assert response.status_code == 202, response.text
    return response.json()


def parts(data: Path, job_id: str) -> dict[str, tuple[int, int]]:
    """Stored checkpoint parts: name -> (inode, mtime); a part re-made would change both. A part
    counts once its record (``pNNNNN.json``, written after the video) is there too."""
    out = {}
    for path in (data / "jobs" / job_id / "upscaled").glob("seg_*/p*.mp4"):
        if not path.with_suffix(".json").is_file():
            continue
        st = path.stat()
        out[str(path.relative_to(data))] = (st.st_ino, st.st_mtime_ns)
    return out


def wait_for_parts(data: Path, job_id: str, more_than: int = 0, timeout: float = 120) -> dict[str, tuple[int, int]]:
    deadline = time.monotonic() + timeout
    while len(found := parts(data, job_id)) <= more_than:
        assert time.monotonic() < deadline, f"no new checkpoint part after {timeout}s"
        time.sleep(0.03)
    return found


def wait_done(server: ServerProcess, job_id: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while (status := server.get(f"/jobs/{job_id}"))["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, status
        time.sleep(0.3)
    return status


def job_processes(job_id: str) -> tuple[list[int], list[int]]:
    """(the job process, its stage processes) of a running job, found by their environment."""
    pids = processes_with_env("VSR_LOCAL_JOB", job_id)
    leaders = [pid for pid in pids if os.getpgid(pid) == pid]
    return leaders, [pid for pid in pids if pid not in leaders]


def freeze_stages(job_id: str, timeout: float = 60) -> tuple[list[int], list[int]]:
    """SIGSTOP the running job's stage processes; (job process, the stages now stopped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leaders, stages = job_processes(job_id)
        for pid in stages:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        time.sleep(0.05)
        stopped = [pid for pid in stages if _state(pid) == "T"]  # not one that ended meanwhile
        if leaders and stopped:
            return leaders, stopped
        for pid in stages:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError("no stage process of the job could be caught running")


def kill_at_once(pids: list[int]) -> None:
    """SIGKILL ``pids`` as if at the same instant: all are stopped first, so none of them can
    act on another's death (the job process answers the server's death, PDEATHSIG, by ending
    its group: killed one after the other, it sometimes got that far, and no orphan was left)."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 10
    while any(_state(pid) not in ("T", "gone") for pid in pids):
        assert time.monotonic() < deadline, [(pid, _state(pid)) for pid in pids]
        time.sleep(0.01)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def assert_succeeded_with_every_frame(status: dict, data: Path) -> None:
    assert status["state"] == "succeeded", status["failure_reason"]
    for stage in ("split", "upscale", "merge"):
        assert status["progress"][stage]["state"] == "succeeded", status["progress"]
    upscale = status["progress"]["upscale"]
    assert upscale["frames_done"] == upscale["frames_total"] == FRAMES
    assert ffprobe_video(data / status["output_key"]) == {"width": 256, "height": 192, "frames": FRAMES}


def test_kill_9_of_the_servers_process_group_leaves_nothing_running_and_the_job_resumes(data: Path, start) -> None:
    server = start()
    job = submit(server.url, task="debug")  # debug keeps the parts, to compare them afterwards
    stored = wait_for_parts(data, job["job_id"])
    os.killpg(server.proc.pid, signal.SIGKILL)  # the job processes run in sessions of their own
    server.stop()
    # Each job process learns of its server's death from the kernel and takes its stages along.
    assert leftover_workers(data) == []
    stored = parts(data, job["job_id"])  # what was complete when everything stopped

    again = start()
    resumed = again.get(f"/jobs/{job['job_id']}")
    assert resumed["state"] in ("queued", "running"), resumed  # not failed: resumed
    assert resumed["progress"]["merge"]["state"] == "pending"
    assert resumed["progress"]["upscale"]["state"] != "failed"
    status = wait_done(again, job["job_id"])
    assert_succeeded_with_every_frame(status, data)
    after = parts(data, job["job_id"])
    assert stored and all(after[name] == seen for name, seen in stored.items())  # reused, not re-made
    again.stop()
    assert leftover_workers(data) == []


def test_sigterm_stops_every_job_process_and_a_restart_kills_what_a_crash_left(data: Path, start) -> None:
    server = start()
    job = submit(server.url)
    wait_for_parts(data, job["job_id"])
    started = time.monotonic()
    server.stop(signal.SIGTERM)  # graceful: requests finish, job process groups end
    assert time.monotonic() - started < 20
    assert leftover_workers(data, settle=0) == []
    record = json.loads((data / ".vsr-api" / "jobs" / f"{job['job_id']}.json").read_text())
    assert record["state"] in ("queued", "running")  # left resumable, not failed

    second = start()
    wait_for_parts(data, job["job_id"], more_than=len(parts(data, job["job_id"])))
    leaders, stages = freeze_stages(job["job_id"])  # a hung stage: it must not outlive what follows
    kill_at_once([second.proc.pid, *leaders])  # the server and its job process (OOM killer)
    second.stop()
    assert sorted(leftover_workers(data, settle=1)) == sorted(stages)  # orphans, as the issue saw them

    third = start()
    assert not set(leftover_workers(data, settle=5)) & set(stages)  # killed at start-up
    status = wait_done(third, job["job_id"])
    assert_succeeded_with_every_frame(status, data)
    third.stop()
    work = data / "jobs" / job["job_id"]
    assert sorted(p.name for p in work.iterdir()) == ["manifest.json", "progress", "result.json"]
    assert [p.name for p in (data / "outputs").rglob("*") if p.is_file()] == [Path(status["output_key"]).name]
    assert leftover_workers(data) == []


def test_jobs_run_at_once_up_to_the_limit_and_failed_ones_are_swept(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    retention = timedelta(seconds=2)
    monkeypatch.setenv("VSR_CHECKPOINT_FRAMES", str(PART_FRAMES))  # the job processes inherit it
    srv = LocalServer(LocalApi(data, concurrent_jobs=2, jobs=1, failed_retention=retention), "127.0.0.1", 0)
    srv.start_background()
    try:
        ids = [submit(srv.url)["job_id"] for _ in range(3)]
        most, deadline = 0, time.monotonic() + 120
        while True:
            states = [srv.api.runner.state(i) for i in ids]
            most = max(most, states.count("running"))
            if "queued" not in states and states.count("running") <= 1:
                break
            assert time.monotonic() < deadline, states
            time.sleep(0.05)
        assert most == 2  # two at once, the third waited for a slot
        wait_for_parts(data, ids[2])
        cancelled = requests.delete(f"{srv.url}/jobs/{ids[2]}", timeout=10).json()
        assert cancelled["state"] == "cancelled"
        work = data / "jobs" / ids[2]
        assert (work / "split").is_dir() and (work / "upscaled").is_dir()  # kept while retained
        deadline = time.monotonic() + retention.total_seconds() + 10
        while (work / "split").exists() or (work / "upscaled").exists():
            assert time.monotonic() < deadline, "a cancelled job's intermediates outlived the retention"
            time.sleep(0.2)
        assert (work / "manifest.json").is_file()
        deadline = time.monotonic() + 10
        while (data / ".vsr-api" / "runs" / f"{ids[2]}.json").exists():  # nothing will resume it
            assert time.monotonic() < deadline, "the run file of a cancelled job outlived the retention"
            time.sleep(0.2)
        for job_id in ids[:2]:
            while srv.api.runner.state(job_id) == "running":
                time.sleep(0.1)
            status = requests.get(f"{srv.url}/jobs/{job_id}", timeout=10).json()
            assert status["state"] == "succeeded", status
            assert not {"split", "upscaled", "logs"} & {p.name for p in (data / "jobs" / job_id).iterdir()}
    finally:
        srv.close()
    assert leftover_workers(data) == []
