"""The request service over the local adapters (directory, JSON files), with a scripted scheduler."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.api.media import small_video
from vsr_api.adapters.av_prober import AvProber
from vsr_api.local.dir_storage import DirStorage
from vsr_api.local.file_job_store import FileJobStore
from vsr_api.local.job_runner import LocalJobRunner
from vsr_api.ports import Observation
from vsr_api.service import JobService
from vsr_api.settings import ApiSettings
from vsr_client.api_models import JobProgress


class ScriptedScheduler:
    def __init__(self) -> None:
        self.state = "running"
        self.graphs: list = []

    def submit(self, record, graph):
        self.graphs.append(graph)
        return {s.name: f"fake-{s.name}" for s in graph}

    def observe(self, record):
        return Observation(state=self.state, progress=JobProgress())

    def cancel(self, record):
        self.state = "cancelled"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_video(tmp_path_factory.mktemp("media") / "clip.mp4")


@pytest.fixture()
def data(tmp_path: Path, clip: Path) -> Path:
    (tmp_path / "inputs").mkdir()
    shutil.copy(clip, tmp_path / "inputs" / "clip.mp4")
    return tmp_path


def service(data: Path, scheduler) -> JobService:
    return JobService(
        # These tests are about the adapters: the quick baseline model keeps them fast.
        ApiSettings(bucket=str(data), default_model="bicubic"),
        storage=DirStorage(data),
        prober=AvProber(),
        store=FileJobStore(data / ".vsr-api"),
        scheduler=scheduler,
        models=["bicubic"],
    )


def test_manifest_and_graph_use_local_paths(data: Path) -> None:
    sched = ScriptedScheduler()
    accepted = service(data, sched).submit({"key": "inputs/clip.mp4", "segment_time": 1}, "http://x").accepted
    manifest = json.loads((data / "jobs" / accepted.job_id / "manifest.json").read_text())
    assert manifest["source"] == str(data / "inputs" / "clip.mp4")
    assert manifest["output"] == str(data / accepted.output_key)
    assert sched.graphs[0][0].command == [
        "vsr-worker", "split", "--manifest", str(data / "jobs" / accepted.job_id / "manifest.json")
    ]  # fmt: skip


def test_unknown_model_is_rejected_with_the_available_ones(data: Path) -> None:
    from vsr_client.contract import VsrError

    with pytest.raises(VsrError) as exc:
        service(data, ScriptedScheduler()).submit({"key": "inputs/clip.mp4", "model": "esrgan-9000"}, "http://x")
    assert exc.value.code.value == "invalid_model" and "bicubic" in exc.value.message


def test_status_follows_the_matroska_output_merge_wrote(data: Path) -> None:
    sched = ScriptedScheduler()
    svc = service(data, sched)
    accepted = svc.submit({"key": "inputs/clip.mp4"}, "http://x").accepted
    assert svc.status(accepted.job_id).state == "running"
    mkv = (data / accepted.output_key).with_suffix(".mkv")
    mkv.parent.mkdir(parents=True)
    mkv.write_bytes(b"matroska")
    (data / "jobs" / accepted.job_id / "result.json").write_text(json.dumps({"output": str(mkv)}))
    sched.state = "succeeded"
    status = svc.status(accepted.job_id)
    assert status.state == "succeeded" and status.output_key.endswith(".mkv")
    assert "/files/" + status.output_key in status.download_url


def test_job_the_runner_never_saw_reports_failed(data: Path) -> None:
    svc = service(data, ScriptedScheduler())
    accepted = svc.submit({"key": "inputs/clip.mp4"}, "http://x").accepted
    restarted = service(data, LocalJobRunner(data))  # no run file: nothing can resume it
    status = restarted.status(accepted.job_id)
    assert status.state == "failed" and status.failure_reason.startswith("[internal_error] the server lost this job")


def test_local_runner_reports_a_failed_stage_with_its_code(data: Path) -> None:
    import time

    from vsr_client.jobgraph import StageSpec

    svc = service(data, ScriptedScheduler())
    record = svc.store.get(svc.submit({"key": "inputs/clip.mp4"}, "http://x").accepted.job_id)
    runner = LocalJobRunner(data)
    failing = StageSpec(name="split", command=["sh", "-c", "echo 'x: error [corrupt_input]: broken GOP' >&2; exit 65"])
    runner.submit(record, [failing])
    deadline = time.monotonic() + 10
    while runner.state(record.job_id) in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.05)
    seen = runner.observe(record)
    runner.shutdown()
    assert (seen.state, seen.failure_reason) == ("failed", "[corrupt_input] broken GOP")
