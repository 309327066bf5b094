from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from tests.media_factory import CASES, make_video
from tests.pipeline_runner import run_graph, write_manifest
from tests.worker_cli import Job


def pytest_configure(config: pytest.Config) -> None:
    if shutil.which("ffprobe") is None or shutil.which("ffmpeg") is None:
        raise pytest.UsageError("ffmpeg/ffprobe are required (scripts/bootstrap.sh installs them)")


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def make_case(media_dir: Path):
    def make(name: str) -> Path:
        return make_video(CASES[name], media_dir)

    return make


@pytest.fixture(scope="session")
def _prepared_job(tmp_path_factory, make_case) -> tuple[Job, Path]:
    """One job split and upscaled, and a pristine copy of it (made once: stages take seconds).

    cfr25 in 4 segments of 25 frames, each in checkpoint parts of 10, 10 and 5 frames.
    """
    root = tmp_path_factory.mktemp("upscaled-job")
    (root / "out").mkdir()
    work = root / "job"
    uri = write_manifest(make_case("cfr25"), root / "out/result.mp4", work, keep_intermediates=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VSR_CHECKPOINT_FRAMES", "10")
        run_graph(uri, ("split", "upscale"))
    shutil.copytree(work, root / "pristine")
    return Job(uri, make_case("cfr25"), work, root / "out/result.mp4"), root / "pristine"


@pytest.fixture
def upscaled_job(_prepared_job, monkeypatch) -> Job:
    """A job as it is after split and upscale, restored for each test (at the same paths:
    its records hold them); merge has not run."""
    job, pristine = _prepared_job
    monkeypatch.setenv("VSR_CHECKPOINT_FRAMES", "10")  # an upscale re-run makes the same parts
    shutil.rmtree(job.work)
    shutil.copytree(pristine, job.work)
    shutil.rmtree(job.out_dir)
    job.out_dir.mkdir()
    return job


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto(request: pytest.FixtureRequest):
    """A moto server (S3, DynamoDB, Batch without Docker) on 127.0.0.1 that records every
    signed request (``.recorder``, see tests/aws_calls.py)."""
    import requests

    from tests.aws_calls import RecordingMotoServer

    server = RecordingMotoServer("127.0.0.1", free_port())
    server.start()
    server.url = f"http://127.0.0.1:{server.get_host_and_port()[1]}"
    requests.post(f"{server.url}/moto-api/config", json={"batch": {"use_docker": False}}, timeout=10)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def moto_server(moto) -> str:
    """The URL of this module's moto server."""
    return moto.url
