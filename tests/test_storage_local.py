"""Local writes through ``storage.output_file``: atomic, and created rather than truncated.

Why "created": on ext4 (``auto_da_alloc``, the default mount option) a file truncated to
zero bytes is written back when it is closed, so an output FFmpeg opened with O_TRUNC over a
pre-created temp file made its close wait to start writing everything out (~0.4 s per GB,
measured in the merge: bench/bench_pipeline.py). The timing cannot be asserted here; that
the writer is handed a path to create can.
"""

from __future__ import annotations

import os
from pathlib import Path

import av
import pytest

from vsr_worker import storage


def test_the_writer_creates_the_temp_file_beside_the_target(tmp_path: Path) -> None:
    dest = tmp_path / "out" / "video.mp4"
    with storage.output_file(str(dest)) as tmp:
        assert tmp.parent == dest.parent and tmp.name.startswith(".video.mp4.")
        assert not tmp.exists()  # FFmpeg's O_CREAT|O_TRUNC creates it: nothing is truncated
        with av.open(str(tmp), "w", format="mp4") as out:
            stream = out.add_stream("mpeg4", rate=25)
            stream.width, stream.height = 16, 16
            for i in range(3):
                frame = av.VideoFrame(16, 16, "yuv420p")
                frame.pts = i
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
        assert not dest.exists()  # only once the block has succeeded
    with av.open(str(dest)) as done:
        assert sum(1 for p in done.demux(video=0) if p.size) == 3
    assert [p.name for p in dest.parent.iterdir()] == ["video.mp4"]


def test_the_result_gets_the_usual_mode(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        storage.write_bytes(str(tmp_path / "a.json"), b"{}")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644


def test_a_block_that_writes_nothing_stores_an_empty_object(tmp_path: Path) -> None:
    with storage.output_file(str(tmp_path / "empty.bin")):
        pass
    assert (tmp_path / "empty.bin").read_bytes() == b""


def test_a_failed_block_leaves_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "part.mp4"
    with pytest.raises(RuntimeError), storage.output_file(str(dest)) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("encoder died")
    assert list(tmp_path.iterdir()) == []
