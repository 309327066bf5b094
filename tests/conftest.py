from __future__ import annotations

import shutil
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
