from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from tests.media_factory import CASES, make_video


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
