"""A full disk is one line, ``[no_space]`` naming the directory, exit 73, and leaves no partial
file; ``vsr-worker run`` reports the failed stage's own line even when its log cannot be
written. Three ways to fill a disk without root: an injected ENOSPC at the moment a file is
stored (every stage), the kernel's own errors (a log on /dev/full, RLIMIT_FSIZE for EFBIG
inside FFmpeg), and a real small tmpfs where user namespaces allow one."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pipeline_runner import run_graph, write_manifest
from tests.worker_cli import WORKER, Job, error_line
from vsr_client.contract import ExitCode
from vsr_client.jobgraph import StageSpec
from vsr_worker.engine.local_scheduler import LocalScheduler, StageFailure
from vsr_worker.errors import FAULT_ENOSPC_ENV


def _temp_files(*roots: Path) -> list[Path]:
    """Files the worker writes before renaming them into place (``.NAME.XXXX.tmp.EXT``)."""
    return [p for root in roots for p in root.rglob(".*") if ".tmp" in p.name]


@pytest.mark.parametrize(
    ("stage", "fault", "directory"),
    [
        ("split", "split/seg_00002", "split"),
        ("upscale", "upscaled/seg_00000/p00001", "upscaled/seg_00000"),
        ("merge", "out/result.mp4", None),  # None: the output's directory
    ],
)
def test_a_full_disk_in_any_stage_is_one_line_naming_the_directory(upscaled_job: Job, stage, fault, directory):
    if stage == "upscale":  # segment 0 not upscaled yet
        shutil.rmtree(upscaled_job.work / "upscaled/seg_00000")
        (upscaled_job.work / "upscaled/seg_00000.json").unlink()
    index = ["--index", "0"] if stage == "upscale" else []
    before = upscaled_job.files()
    proc = upscaled_job.run(stage, *index, env={FAULT_ENOSPC_ENV: fault})
    message = error_line(proc, "no_space", ExitCode.CANTCREAT)
    where = upscaled_job.out_dir if directory is None else upscaled_job.work / directory
    assert message == f"no space left on device writing under {where}"
    assert _temp_files(upscaled_job.work, upscaled_job.out_dir) == []
    assert list(upscaled_job.out_dir.iterdir()) == []
    after = upscaled_job.files()
    if stage == "upscale":  # the part stored before the disk filled stays for the next attempt
        assert "upscaled/seg_00000/p00000.mp4" in after and "upscaled/seg_00000/p00001.mp4" not in after
    if stage != "split":  # split re-makes its chunks; the later stages lose nothing
        assert {k: v for k, v in before.items() if k in after} == {k: after[k] for k in before if k in after}
        assert set(before) <= set(after)


def test_a_file_size_limit_inside_ffmpeg_is_no_space(upscaled_job: Job):
    """RLIMIT_FSIZE: the kernel fails FFmpeg's own write of a part (EFBIG) mid-file. Python
    ignores SIGXFSZ, so the write returns the error rather than killing the process."""
    shutil.rmtree(upscaled_job.work / "upscaled/seg_00000")
    (upscaled_job.work / "upscaled/seg_00000.json").unlink()
    part = (upscaled_job.work.parent / "pristine/upscaled/seg_00000/p00000.mp4").stat().st_size

    def limit() -> None:  # JSON records fit; a part does not
        resource.setrlimit(resource.RLIMIT_FSIZE, (part // 2, part // 2))

    proc = upscaled_job.run("upscale", "--index", "0", preexec_fn=limit)
    message = error_line(proc, "no_space", ExitCode.CANTCREAT)
    assert message == f"file size limit reached writing under {upscaled_job.work / 'upscaled/seg_00000'}"
    assert _temp_files(upscaled_job.work) == []


# The disk fills while upscale's decode and encode threads are busy: the 50th of 100 frames'
# progress update fails as a full disk would (a real one does this only at some fill levels).
_FILL_MID_UPSCALE = """
import errno, sys
from vsr_worker import cli, progress
advance, calls = progress.ProgressWriter.advance, []
def failing(self, n=1):
    calls.append(n)
    if len(calls) == 50:
        raise OSError(errno.ENOSPC, "No space left on device", self.uri)
    return advance(self, n)
progress.ProgressWriter.advance = failing
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_disk_filling_mid_upscale_stops_its_threads_cleanly(tmp_path, make_case):
    """Before: the chunk and the part were closed under the running threads (exit -11, SIGSEGV)."""
    work = tmp_path / "job"
    manifest = write_manifest(make_case("cfr25"), tmp_path / "out.mp4", work, segment_time=4.0)  # 1 segment
    run_graph(manifest, ("split",))
    proc = subprocess.run(
        [sys.executable, "-c", _FILL_MID_UPSCALE, "upscale", "--manifest", manifest],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "VSR_BATCH": "1"},
    )
    message = error_line(proc, "no_space", ExitCode.CANTCREAT)
    assert message == f"no space left on device writing under {work / 'progress'}"
    assert _temp_files(work) == []
    assert not (work / "upscaled/seg_00000.json").exists()


def test_the_stage_line_survives_a_log_that_cannot_be_written(tmp_path):
    """The log file is on a full disk (/dev/full: the kernel answers every write with ENOSPC):
    the scheduler still reports the stage's own last line, not 'no output'."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "upscale_00000.log").symlink_to("/dev/full")
    line = "vsr-worker: error [no_space]: no space left on device writing under /data/job/upscaled"
    child = [sys.executable, "-c", f"import sys; print('working'); print({line!r}, file=sys.stderr); sys.exit(73)"]
    with pytest.raises(StageFailure) as err:
        LocalScheduler(logs, poll=0.02).run([StageSpec(name="upscale", command=child)])
    assert (err.value.exit_code, err.value.message) == (73, line)


def _user_namespaces() -> bool:
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(shutil.which("unshare") is None or not _user_namespaces(), reason="no user namespaces here")
def test_run_on_a_really_full_disk_reports_the_stage_line(tmp_path, make_case):
    """`vsr-worker run` with its work directory on a 40 KiB tmpfs (in a user namespace): the
    failing stage's own line comes through, exit 73, and no output appears."""
    work, out_dir = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    out_dir.mkdir()
    run = [*WORKER, "run", str(make_case("cfr25")), "-o", str(out_dir / "result.mp4"), "--work-dir", str(work)]
    run += ["--model", "bicubic", "--segment-time", "4", "-q"]  # one segment: split fits, upscale does not
    script = f'mount -t tmpfs -o size=40k vsr-test "{work}" && exec "$@"'
    proc = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, "sh", *run], capture_output=True, text=True, timeout=300
    )
    message = error_line(proc, "no_space", ExitCode.CANTCREAT)
    assert message.startswith(f"no space left on device writing under {work}"), message
    assert list(out_dir.iterdir()) == []
