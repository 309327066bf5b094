"""Damaged intermediates are never merged: merge fails with corrupt_intermediate (exit 74) and
one line, publishes nothing and keeps every file of the job; upscale's next attempt makes a
damaged part again, and then the job succeeds frame-exact."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import oracle
from tests.media_factory import CASES
from tests.worker_cli import Job, error_line
from vsr_client.contract import ExitCode
from vsr_worker import cli
from vsr_worker.stages import merge

SEGMENT, PART = 2, 1  # the part the tests damage: upscaled/seg_00002/p00001.mp4
TARGET = f"upscaled/seg_{SEGMENT:05d}/p{PART:05d}.mp4"


def _random(job: Job) -> None:
    (job.work / TARGET).write_bytes(os.urandom(20 * 1024))


def _appended(job: Job) -> None:  # the file still opens and demuxes: only its hash tells
    with open(job.work / TARGET, "ab") as f:
        f.write(os.urandom(20 * 1024))


def _bit_rot(job: Job) -> None:
    """Same size, same boxes: 64 bytes of one frame's payload flipped. It demuxes and muxes like
    a good part; only its SHA-256 (checked beside the mux) tells."""
    data = bytearray((job.work / TARGET).read_bytes())
    mdat = data.find(b"mdat")
    middle = mdat + (len(data) - mdat) // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    (job.work / TARGET).write_bytes(bytes(data))


def _truncated(job: Job) -> None:
    data = (job.work / TARGET).read_bytes()
    (job.work / TARGET).write_bytes(data[: len(data) // 2])


def _swapped(job: Job) -> None:  # the same part of the segment before
    shutil.copy(job.work / TARGET.replace(f"seg_{SEGMENT:05d}", f"seg_{SEGMENT - 1:05d}"), job.work / TARGET)


def _swapped_with_record(job: Job) -> None:
    """Part and record of the segment before, the record edited to claim this place: hash,
    size, frame count and codec header all agree; only the timestamps tell."""
    other = job.work / TARGET.replace(f"seg_{SEGMENT:05d}", f"seg_{SEGMENT - 1:05d}")
    shutil.copy(other, job.work / TARGET)
    record = json.loads(other.with_suffix(".json").read_text())
    record["part"] = str(job.work / TARGET)
    (job.work / TARGET).with_suffix(".json").write_text(json.dumps(record))


def _record_missing(job: Job) -> None:
    (job.work / TARGET).with_suffix(".json").unlink()


def _record_damaged(job: Job) -> None:
    record = (job.work / TARGET).with_suffix(".json")
    record.write_text(record.read_text()[:40])


def _part_missing(job: Job) -> None:
    (job.work / TARGET).unlink()


DAMAGE: dict[str, Callable[[Job], None]] = {
    "random_bytes": _random,
    "random_bytes_appended": _appended,
    "bit_rot_inside_a_frame": _bit_rot,
    "truncated": _truncated,
    "swapped_from_another_segment": _swapped,
    "swapped_with_its_record": _swapped_with_record,
    "record_missing": _record_missing,
    "record_damaged": _record_damaged,
    "part_missing": _part_missing,
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_merge_refuses_a_damaged_part_and_keeps_the_job(upscaled_job: Job, damage: str) -> None:
    DAMAGE[damage](upscaled_job)
    before = upscaled_job.files()
    proc = upscaled_job.run("merge")
    message = error_line(proc, "corrupt_intermediate", ExitCode.IOERR)
    assert TARGET in message, message
    assert str(upscaled_job.work) not in message  # job-relative names, no server paths
    assert list(upscaled_job.out_dir.iterdir()) == []  # no output, no temp file
    assert upscaled_job.files() == before  # nothing of the job lost: the parts stay for a retry


def test_upscale_remakes_a_damaged_part_and_the_job_then_succeeds(upscaled_job: Job, tmp_path: Path) -> None:
    intact = (upscaled_job.work / TARGET).read_bytes()
    _random(upscaled_job)
    error_line(upscaled_job.run("merge"), "corrupt_intermediate", ExitCode.IOERR)

    proc = upscaled_job.run("upscale", "--index", str(SEGMENT))  # the next attempt of that child
    assert proc.returncode == 0, proc.stderr
    done = json.loads((upscaled_job.work / f"upscaled/seg_{SEGMENT:05d}.json").read_text())
    assert done["resumed_parts"] == PART  # the parts before the damaged one were kept
    assert (upscaled_job.work / TARGET).read_bytes() == intact  # made again, byte-identical

    proc = upscaled_job.run("merge")
    assert proc.returncode == 0, proc.stderr
    spec = CASES["cfr25"]
    assert oracle.video_frame_times(upscaled_job.output) == oracle.video_frame_times(upscaled_job.source)
    source = oracle.frame_codes(oracle.gray_frames(upscaled_job.source, spec.width, spec.height))
    output = oracle.frame_codes(oracle.gray_frames(upscaled_job.output, spec.width * 2, spec.height * 2))
    assert len(output) == len(source) == 100
    assert max(abs(a - b) for a, b in zip(output, source)) <= 3  # each frame where it belongs


def test_a_damaged_segment_record_is_corrupt_for_merge_and_remade_by_upscale(upscaled_job: Job) -> None:
    record = upscaled_job.work / f"upscaled/seg_{SEGMENT:05d}.json"
    record.write_text("{not json")
    message = error_line(upscaled_job.run("merge"), "corrupt_intermediate", ExitCode.IOERR)
    assert f"upscaled/seg_{SEGMENT:05d}.json" in message
    assert upscaled_job.run("upscale", "--index", str(SEGMENT)).returncode == 0
    assert json.loads(record.read_text())["resumed_parts"] == 3  # every part was intact
    assert upscaled_job.run("merge").returncode == 0 and upscaled_job.output.exists()


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[:-100]), "bytes, split wrote"),
        (lambda p: p.write_bytes(os.urandom(p.stat().st_size)), "cannot be read"),
        (lambda p: p.unlink(), "is missing"),
    ],
    ids=["truncated", "garbled", "missing"],
)
def test_upscale_refuses_a_damaged_chunk(upscaled_job: Job, damage, words) -> None:
    shutil.rmtree(upscaled_job.work / "upscaled/seg_00001")  # segment 1 not upscaled yet
    (upscaled_job.work / "upscaled/seg_00001.json").unlink()
    damage(upscaled_job.work / "split/seg_00001.mp4")
    before = upscaled_job.files()
    message = error_line(upscaled_job.run("upscale", "--index", "1"), "corrupt_intermediate", ExitCode.IOERR)
    assert "split/seg_00001.mp4" in message and words in message, message
    assert upscaled_job.files() == before  # no part, no temp file, the chunk left as it was


@pytest.mark.parametrize(
    ("stage", "index_text"),
    [
        ("upscale", '{"frames": 100, "segm'),
        ("merge", json.dumps({"frames": 100, "time_base": "1/12800", "probe": {}, "segments": []})),
    ],
    ids=["not_json", "segments_missing"],
)
def test_a_damaged_split_index_is_one_line(upscaled_job: Job, stage: str, index_text: str) -> None:
    (upscaled_job.work / "split/index.json").write_text(index_text)
    message = error_line(upscaled_job.run(stage), "corrupt_intermediate", ExitCode.IOERR)
    assert message.startswith("split/index.json ")
    assert list(upscaled_job.out_dir.iterdir()) == []


def test_merged_output_is_checked_before_it_is_put_in_place(upscaled_job: Job, monkeypatch, capsys) -> None:
    """A muxer that writes other timestamps than the parts hold (as the mov muxer does
    without the timescale options) fails the merge before anything is published."""
    original = merge._video_packets

    def shifted(parts, target, taken):
        for key, seq, packet, stream in original(parts, target, taken):
            packet.pts += 1
            packet.dts += 1
            yield key, seq, packet, stream

    monkeypatch.setattr(merge, "_video_packets", shifted)
    assert cli.main(["merge", "--manifest", upscaled_job.manifest]) == int(ExitCode.FAILURE)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("vsr-worker: error [stage_failed]: the merged output: a frame has timestamp"), last
    assert list(upscaled_job.out_dir.iterdir()) == []
    monkeypatch.setattr(merge, "_video_packets", original)
    assert cli.main(["merge", "--manifest", upscaled_job.manifest]) == 0 and upscaled_job.output.exists()
