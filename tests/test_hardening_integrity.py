"""Damaged intermediates are never merged: merge fails with corrupt_intermediate (exit 74) and
one line, publishes nothing and keeps every file of the job; upscale's next attempt makes a
damaged part again, and then the job succeeds frame-exact."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import oracle
from tests.media_factory import CASES
from tests.pipeline_runner import run_graph, write_manifest
from tests.worker_cli import error_line, run_worker
from vsr_client.contract import ExitCode
from vsr_worker import cli
from vsr_worker.stages import merge

SEGMENT, PART = 2, 1  # the part the tests damage: upscaled/seg_00002/p00001.mp4
TARGET = f"upscaled/seg_{SEGMENT:05d}/p{PART:05d}.mp4"


@dataclass
class Job:
    manifest: str
    source: Path
    work: Path
    output: Path

    @property
    def out_dir(self) -> Path:
        return self.output.parent

    def files(self) -> dict[str, bytes]:
        """Every file of the job but the progress records (stages rewrite those)."""
        return {
            str(p.relative_to(self.work)): p.read_bytes()
            for p in self.work.rglob("*")
            if p.is_file() and p.parts[len(self.work.parts)] != "progress"
        }

    def run(self, *args: str):
        return run_worker(*args, "--manifest", self.manifest, cwd=self.work.parent)


@pytest.fixture(scope="module")
def _prepared(tmp_path_factory, make_case) -> tuple[Job, Path]:
    """One job split and upscaled, and a pristine copy of it (made once: stages take seconds)."""
    # 25 frames per segment in parts of 10, 10 and 5: damage can hit a middle part.
    root = tmp_path_factory.mktemp("hardening")
    (root / "out").mkdir()
    work = root / "job"
    uri = write_manifest(make_case("cfr25"), root / "out/result.mp4", work, keep_intermediates=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VSR_CHECKPOINT_FRAMES", "10")
        run_graph(uri, ("split", "upscale"))
    shutil.copytree(work, root / "pristine")
    return Job(uri, make_case("cfr25"), work, root / "out/result.mp4"), root / "pristine"


@pytest.fixture
def upscaled(_prepared, monkeypatch) -> Job:
    """The prepared job as it was after upscale (the same paths: the records hold them)."""
    job, pristine = _prepared
    monkeypatch.setenv("VSR_CHECKPOINT_FRAMES", "10")  # an upscale re-run makes the same parts
    shutil.rmtree(job.work)
    shutil.copytree(pristine, job.work)
    shutil.rmtree(job.out_dir)
    job.out_dir.mkdir()
    return job


def _random(job: Job) -> None:
    (job.work / TARGET).write_bytes(os.urandom(20 * 1024))


def _appended(job: Job) -> None:  # the file still opens and demuxes: only its hash tells
    with open(job.work / TARGET, "ab") as f:
        f.write(os.urandom(20 * 1024))


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
    "truncated": _truncated,
    "swapped_from_another_segment": _swapped,
    "swapped_with_its_record": _swapped_with_record,
    "record_missing": _record_missing,
    "record_damaged": _record_damaged,
    "part_missing": _part_missing,
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_merge_refuses_a_damaged_part_and_keeps_the_job(upscaled: Job, damage: str) -> None:
    DAMAGE[damage](upscaled)
    before = upscaled.files()
    proc = upscaled.run("merge")
    message = error_line(proc, "corrupt_intermediate", ExitCode.IOERR)
    assert TARGET in message, message
    assert str(upscaled.work) not in message  # job-relative names, no server paths
    assert list(upscaled.out_dir.iterdir()) == []  # no output, no temp file
    assert upscaled.files() == before  # nothing of the job lost: the parts stay for a retry


def test_upscale_remakes_a_damaged_part_and_the_job_then_succeeds(upscaled: Job, tmp_path: Path) -> None:
    intact = (upscaled.work / TARGET).read_bytes()
    _random(upscaled)
    error_line(upscaled.run("merge"), "corrupt_intermediate", ExitCode.IOERR)

    proc = upscaled.run("upscale", "--index", str(SEGMENT))  # the next attempt of that child
    assert proc.returncode == 0, proc.stderr
    done = json.loads((upscaled.work / f"upscaled/seg_{SEGMENT:05d}.json").read_text())
    assert done["resumed_parts"] == PART  # the parts before the damaged one were kept
    assert (upscaled.work / TARGET).read_bytes() == intact  # made again, byte-identical

    proc = upscaled.run("merge")
    assert proc.returncode == 0, proc.stderr
    spec = CASES["cfr25"]
    assert oracle.video_frame_times(upscaled.output) == oracle.video_frame_times(upscaled.source)
    source = oracle.frame_codes(oracle.gray_frames(upscaled.source, spec.width, spec.height))
    output = oracle.frame_codes(oracle.gray_frames(upscaled.output, spec.width * 2, spec.height * 2))
    assert len(output) == len(source) == 100
    assert max(abs(a - b) for a, b in zip(output, source)) <= 3  # each frame where it belongs


def test_a_damaged_segment_record_is_corrupt_for_merge_and_remade_by_upscale(upscaled: Job) -> None:
    record = upscaled.work / f"upscaled/seg_{SEGMENT:05d}.json"
    record.write_text("{not json")
    message = error_line(upscaled.run("merge"), "corrupt_intermediate", ExitCode.IOERR)
    assert f"upscaled/seg_{SEGMENT:05d}.json" in message
    assert upscaled.run("upscale", "--index", str(SEGMENT)).returncode == 0
    assert json.loads(record.read_text())["resumed_parts"] == 3  # every part was intact
    assert upscaled.run("merge").returncode == 0 and upscaled.output.exists()


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[:-100]), "bytes, split wrote"),
        (lambda p: p.write_bytes(os.urandom(p.stat().st_size)), "cannot be read"),
        (lambda p: p.unlink(), "is missing"),
    ],
    ids=["truncated", "garbled", "missing"],
)
def test_upscale_refuses_a_damaged_chunk(upscaled: Job, damage, words) -> None:
    shutil.rmtree(upscaled.work / "upscaled/seg_00001")  # segment 1 not upscaled yet
    (upscaled.work / "upscaled/seg_00001.json").unlink()
    damage(upscaled.work / "split/seg_00001.mp4")
    before = upscaled.files()
    message = error_line(upscaled.run("upscale", "--index", "1"), "corrupt_intermediate", ExitCode.IOERR)
    assert "split/seg_00001.mp4" in message and words in message, message
    assert upscaled.files() == before  # no part, no temp file, the chunk left as it was


@pytest.mark.parametrize(
    ("stage", "index_text"),
    [
        ("upscale", '{"frames": 100, "segm'),
        ("merge", json.dumps({"frames": 100, "time_base": "1/12800", "probe": {}, "segments": []})),
    ],
    ids=["not_json", "segments_missing"],
)
def test_a_damaged_split_index_is_one_line(upscaled: Job, stage: str, index_text: str) -> None:
    (upscaled.work / "split/index.json").write_text(index_text)
    message = error_line(upscaled.run(stage), "corrupt_intermediate", ExitCode.IOERR)
    assert message.startswith("split/index.json ")
    assert list(upscaled.out_dir.iterdir()) == []


def test_merged_output_is_checked_before_it_is_put_in_place(upscaled: Job, monkeypatch, capsys) -> None:
    """A muxer that writes other timestamps than the parts hold (as the mov muxer does
    without the timescale options) fails the merge before anything is published."""
    original = merge._video_packets

    def shifted(parts, target, taken):
        for key, seq, packet, stream in original(parts, target, taken):
            packet.pts += 1
            packet.dts += 1
            yield key, seq, packet, stream

    monkeypatch.setattr(merge, "_video_packets", shifted)
    assert cli.main(["merge", "--manifest", upscaled.manifest]) == int(ExitCode.FAILURE)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("vsr-worker: error [stage_failed]: the merged output: a frame has timestamp"), last
    assert list(upscaled.out_dir.iterdir()) == []
    monkeypatch.setattr(merge, "_video_packets", original)
    assert cli.main(["merge", "--manifest", upscaled.manifest]) == 0 and upscaled.output.exists()
