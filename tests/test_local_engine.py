"""The local engine end to end: the real CLI, the real scheduler, subprocess children."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests import oracle
from vsr_client.jobgraph import StageSpec
from vsr_worker.engine.local_run import plan_parallelism
from vsr_worker.engine.local_scheduler import LocalScheduler, StageFailure, index_groups


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


def test_more_children_than_jobs_run_as_persistent_workers_with_index_lists(tmp_path):
    """An array stage that takes --index runs as `jobs` processes, each given its share."""
    log = tmp_path / "calls.txt"
    record = (
        "import os, sys, pathlib; pathlib.Path(sys.argv[1]).open('a').write("
        "repr((sys.argv[2:], os.environ.get('AWS_BATCH_JOB_ARRAY_INDEX'))) + '\\n')"
    )
    graph = [
        StageSpec(
            name="upscale",
            command=[sys.executable, "-c", record, str(log)],
            array_size=5,
            index_flag="--index",
        )
    ]
    scheduler = LocalScheduler(tmp_path / "logs", jobs=2, poll=0.02)
    scheduler.run(graph)
    calls = sorted(eval(line) for line in log.read_text().splitlines())
    assert calls == [(["--index", "0,2,4"], None), (["--index", "1,3"], None)]
    assert set(scheduler.process_seconds) == {("upscale", 0), ("upscale", 1)}
    log.unlink()
    LocalScheduler(tmp_path / "logs", jobs=5, poll=0.02).run(graph)  # enough jobs: one child each, like Batch
    assert sorted(eval(line) for line in log.read_text().splitlines()) == [([], str(i)) for i in range(5)]


def test_index_groups_share_children_round_robin():
    assert index_groups(5, 2) == [[0, 2, 4], [1, 3]]
    assert index_groups(2, 8) == [[0], [1]]
    assert sorted(i for g in index_groups(17, 3) for i in g) == list(range(17))


def test_debug_run_prints_where_the_time_went(tmp_path, make_case):
    work = tmp_path / "work"
    options = ["--model", "bicubic", "--segment-time", "2", "-j", "1", "--task", "debug", "--work-dir", str(work)]
    proc = subprocess.run(
        [sys.executable, "-m", "vsr_worker", "run", str(make_case("cfr25")), "-o", str(tmp_path / "o.mp4"), *options],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    breakdown = json.loads((work / "timings.json").read_text())
    assert [(s["stage"], s["index"]) for s in breakdown["stages"]] == [
        ("split", 0),
        ("upscale", 0),
        ("upscale", 1),
        ("merge", 0),
    ]
    upscale = breakdown["stages"][1]
    assert {"startup", "model_load", "decode", "colour_in", "inference", "colour_out", "encode"} <= set(
        upscale["seconds"]
    )
    assert "model_load" not in breakdown["stages"][2]["seconds"]  # one process, one model load (-j 1)
    assert set(upscale["busy_fraction"]) == {"decode", "inference", "encode"}
    assert all(0 < v <= 1 for v in upscale["busy_fraction"].values())
    assert breakdown["stage_process_seconds"]["upscale"] <= breakdown["wall_seconds"]
    assert "upscale threads busy: decode" in proc.stderr and "upscale[1]: " in proc.stderr


@pytest.mark.parametrize(
    ("segments", "jobs", "cores", "expected"),
    [(1, None, 2, (1, 2)), (5, None, 2, (2, 1)), (3, None, 8, (3, 2)), (1, None, 16, (1, 16)), (9, 4, 2, (4, 1))],
)
def test_processes_and_threads_share_out_the_cores(segments, jobs, cores, expected):
    """Every core runs inference: one long segment gets them all, many segments one process per core."""
    assert plan_parallelism(segments, jobs, cores) == expected
