"""The prober reads a video's header through ranged reads only: bytes counted."""

from __future__ import annotations

from pathlib import Path

import pytest
from moto import mock_aws

from tests.api.media import large_video, moov_offset
from tests.api.moto_world import BUCKET, MOTO_BATCH, build_world
from vsr_api.adapters.av_prober import AvProber
from vsr_api.adapters.ranged_reader import RangedReader
from vsr_api.local.dir_storage import DirStorage

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("large")
    return {
        "faststart": large_video(d / "faststart.mp4", faststart=True),
        "moov_at_end": large_video(d / "moov_at_end.mp4", faststart=False),
    }


def test_faststart_mp4_costs_at_most_one_mib(videos: dict[str, Path]) -> None:
    path = videos["faststart"]
    assert path.stat().st_size > 5 * MiB and moov_offset(path)[0] < 1024
    storage = DirStorage(path.parent)
    info = AvProber().probe(storage, storage.head(path.name))
    assert (info.width, info.height, info.codec) == (640, 360, "h264")
    assert info.duration == pytest.approx(12.0, abs=0.05)
    assert info.bytes_read <= MiB
    print(f"faststart: {info.bytes_read} of {path.stat().st_size} bytes read")


def test_moov_at_end_costs_head_plus_tail_only(videos: dict[str, Path]) -> None:
    path = videos["moov_at_end"]
    size = path.stat().st_size
    moov_at, moov_size = moov_offset(path)
    assert moov_at > size - moov_size - 16  # the index really is at the end
    storage = DirStorage(path.parent)
    info = AvProber().probe(storage, storage.head(path.name))
    assert info.duration == pytest.approx(12.0, abs=0.05)
    assert info.bytes_read <= moov_size + MiB
    assert info.bytes_read < size / 20
    print(f"moov at end: {info.bytes_read} of {size} bytes read (moov {moov_size} bytes)")


def test_probe_through_s3_ranged_gets_counts_the_same_bytes(videos: dict[str, Path]) -> None:
    path = videos["faststart"]
    with mock_aws(config=MOTO_BATCH):
        world = build_world()
        world.s3.upload_file(str(path), BUCKET, "inputs/big.mp4")
        gets: list[str] = []
        s3 = world.service.storage.s3  # type: ignore[attr-defined]
        s3.meta.events.register("provide-client-params.s3.GetObject", lambda params, **_: gets.append(params["Range"]))
        info = world.service.prober.probe(world.service.storage, world.service.storage.head("inputs/big.mp4"))
    assert info.duration == pytest.approx(12.0, abs=0.05)
    assert gets and all(r.startswith("bytes=") for r in gets)
    fetched = sum(int(r[6:].split("-")[1]) - int(r[6:].split("-")[0]) + 1 for r in gets)
    assert fetched == info.bytes_read <= MiB


def test_ranged_reader_reads_and_seeks_like_a_file(tmp_path: Path) -> None:
    data = bytes(range(256)) * 1000
    calls = []

    def fetch(start: int, end: int) -> bytes:
        calls.append((start, end))
        return data[start : end + 1]

    reader = RangedReader(fetch, len(data), block_size=4096)
    reader.seek(-10, 2)
    assert reader.read() == data[-10:]
    reader.seek(5000)
    assert reader.read(100) == data[5000:5100]
    assert reader.read(0) == b""
    assert reader.bytes_read == sum(e - s + 1 for s, e in calls) < len(data) // 10
