"""The local engine end to end: the real CLI, the real scheduler, subprocess children."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests import oracle
from vsr_client.jobgraph import StageSpec
from vsr_worker.engine.local_scheduler import LocalScheduler, StageFailure


def test_run_upscales_through_subprocess_children(tmp_path, make_case):
    src = make_case("ntsc_bframes")
    out = tmp_path / "out.mp4"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vsr_worker",
            "run",
            str(src),
            "-o",
            str(out),
            "--segment-time",
            "1",
            "--jobs",
            "2",
            "--model",
            "bicubic",
            "--scale",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"wrote {out} (")
    assert "progress: " in proc.stderr  # plain progress lines when not on a terminal
    assert oracle.video_frame_times(out) == oracle.video_frame_times(src)
    assert not list(tmp_path.glob(".vsr-work-*"))  # intermediates removed after success


def test_keep_work_leaves_every_intermediate(tmp_path, make_case):
    src = make_case("cfr25")
    work = tmp_path / "work"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vsr_worker",
            "run",
            str(src),
            "-o",
            str(tmp_path / "o.mp4"),
            "--segment-time",
            "2",
            "--model",
            "bicubic",
            "--work-dir",
            str(work),
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert (work / "manifest.json").exists() and (work / "split" / "index.json").exists()
    assert sorted(p.relative_to(work).as_posix() for p in (work / "upscaled").rglob("*.mp4")) == [
        "upscaled/seg_00000/p00000.mp4",
        "upscaled/seg_00001/p00000.mp4",
    ]
    assert (work / "result.json").exists()


def _writer(path: Path, body: str) -> list[str]:
    code = f"import os, pathlib; p = pathlib.Path({str(path)!r}); {body}"
    return [sys.executable, "-c", code]


def test_scheduler_sets_the_array_index_like_batch_and_respects_dependencies(tmp_path):
    log = tmp_path / "order.txt"
    append = "p.open('a').write(os.environ.get('AWS_BATCH_JOB_ARRAY_INDEX', '-') + ' ' + os.environ['STAGE'] + '\\n')"
    graph = [
        StageSpec(name="split", command=_writer(log, append), environment={"STAGE": "split"}),
        StageSpec(
            name="upscale",
            command=_writer(log, append),
            array_size=4,
            depends_on=["split"],
            environment={"STAGE": "upscale"},
        ),
        StageSpec(name="merge", command=_writer(log, append), depends_on=["upscale"], environment={"STAGE": "merge"}),
    ]
    LocalScheduler(tmp_path / "logs", jobs=3, poll=0.02).run(graph)
    lines = log.read_text().splitlines()
    assert lines[0] == "- split" and lines[-1] == "- merge"
    assert sorted(lines[1:-1]) == ["0 upscale", "1 upscale", "2 upscale", "3 upscale"]


def test_a_failing_child_stops_the_job_with_its_last_line(tmp_path):
    marker = tmp_path / "merge-ran"
    graph = [
        StageSpec(
            name="upscale",
            array_size=2,
            command=[
                sys.executable,
                "-c",
                "import os, sys; i = os.environ['AWS_BATCH_JOB_ARRAY_INDEX']; "
                "print('vsr-worker: error [corrupt_input]: bad chunk', file=sys.stderr) if i == '1' else None; "
                "sys.exit(65 if i == '1' else 0)",
            ],
        ),
        StageSpec(name="merge", command=_writer(marker, "p.write_text('x')"), depends_on=["upscale"]),
    ]
    with pytest.raises(StageFailure) as err:
        LocalScheduler(tmp_path / "logs", jobs=2, poll=0.02).run(graph)
    assert (err.value.stage, err.value.index, err.value.exit_code) == ("upscale", 1, 65)
    assert err.value.message == "vsr-worker: error [corrupt_input]: bad chunk"
    assert not marker.exists()
