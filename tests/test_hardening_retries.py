"""The retry matrix: storage trouble and lost hosts are retried, bad input never, internal
failures once; on Batch (its documented rules applied to the job definitions' own) and in
the local scheduler alike. S3 against moto behind a server that answers with S3's 500/503/
SlowDown: the worker retries and succeeds, and after too many failures exits storage_error."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import boto3
import pytest
import requests

from stack.compute import evaluate_on_exit
from tests.batch_rules import batch_decides
from tests.conftest import free_port
from tests.pipeline_runner import write_manifest
from tests.s3_faults import INTERNAL_ERROR, SERVICE_UNAVAILABLE, SLOW_DOWN, faulty_s3_server
from tests.worker_cli import Job, error_line, run_worker
from vsr_client.contract import ERROR_EXIT_CODES, ErrorCode, ExitCode
from vsr_client.jobgraph import StageSpec, build_job_graph
from vsr_client.retry_matrix import ATTEMPT_ENV, DEFAULT_ATTEMPTS, exit_status
from vsr_worker import cli
from vsr_worker.engine.local_scheduler import LocalScheduler, StageFailure
from vsr_worker.errors import FAULT_ENOSPC_ENV
from vsr_worker.stages import merge as merge_stage

BUCKET = "vsr-retries"


def _batch_attempts(code: ErrorCode, job_attempts: int = DEFAULT_ATTEMPTS) -> int:
    """How many times Batch runs a stage that fails with ``code`` every time."""
    for attempt in range(1, job_attempts + 1):
        if batch_decides(evaluate_on_exit(), exit_status(code, attempt)) == "EXIT":
            return attempt
    return job_attempts


@pytest.mark.parametrize(
    ("code", "attempts"),
    [
        (ErrorCode.CORRUPT_INPUT, 1),  # bad input: never
        (ErrorCode.INVALID_MANIFEST, 1),
        (ErrorCode.INPUT_NOT_FOUND, 1),
        (ErrorCode.DEVICE_UNAVAILABLE, 1),
        (ErrorCode.INTERNAL, 2),  # internal: once more
        (ErrorCode.STAGE_FAILED, 2),
        (ErrorCode.CORRUPT_INTERMEDIATE, 2),
        (ErrorCode.NO_SPACE, 2),
        (ErrorCode.STORAGE_ERROR, DEFAULT_ATTEMPTS),  # storage: every attempt the job has
    ],
)
def test_batch_runs_each_failure_as_often_as_the_matrix_says(code: ErrorCode, attempts: int) -> None:
    assert _batch_attempts(code) == attempts


def test_host_loss_is_retried_and_the_final_exit_code_is_the_documented_one() -> None:
    assert batch_decides(evaluate_on_exit(), None, "Host EC2 (instance i-0123456789abcdef0) terminated.") == "RETRY"
    for code, exit_code in ERROR_EXIT_CODES.items():
        assert exit_status(code, None) == exit_status(code, 2) == int(exit_code)  # by hand, and a last attempt


def _child(script: str) -> list[str]:
    return [sys.executable, "-c", "import os, sys; attempt = os.environ['AWS_BATCH_JOB_ATTEMPT']; " + script]


def test_local_scheduler_retries_a_retry_exit_with_the_next_attempt_number(tmp_path: Path) -> None:
    seen = tmp_path / "attempts"
    script = f"open({str(seen)!r}, 'a').write(attempt + ' '); sys.exit(75 if attempt == '1' else 0)"
    LocalScheduler(tmp_path / "logs", poll=0.02).run([StageSpec(name="split", command=_child(script))])
    assert seen.read_text() == "1 2 "


@pytest.mark.parametrize(("exit_code", "runs"), [(65, 1), (74, 1), (75, DEFAULT_ATTEMPTS)])
def test_local_scheduler_applies_the_job_definitions_rules(tmp_path: Path, exit_code: int, runs: int) -> None:
    seen = tmp_path / "attempts"
    script = f"open({str(seen)!r}, 'a').write(attempt + ' '); sys.exit({exit_code})"
    with pytest.raises(StageFailure) as err:
        LocalScheduler(tmp_path / "logs", poll=0.02).run([StageSpec(name="merge", command=_child(script))])
    assert err.value.exit_code == exit_code
    assert seen.read_text().split() == [str(n) for n in range(1, runs + 1)]


def test_an_internal_failure_runs_twice_and_ends_with_its_own_exit_code(upscaled_job: Job) -> None:
    """The real worker under the local scheduler: attempt 1 exits 75, attempt 2 exits 74."""
    (upscaled_job.work / "split/index.json").write_text("{damaged")
    merge = StageSpec(name="merge", command=build_job_graph(upscaled_job.manifest, 4)[2].command)
    with pytest.raises(StageFailure) as err:
        LocalScheduler(upscaled_job.work / "logs", poll=0.05).run([merge])
    assert err.value.exit_code == int(ExitCode.IOERR)
    assert err.value.message.startswith("vsr-worker: error [corrupt_intermediate]: split/index.json is not valid JSON")
    log = (upscaled_job.work / "logs/merge_00000.log").read_text()
    assert log.count("[corrupt_intermediate]") == 2  # both attempts' lines kept


@pytest.fixture
def s3_job(tmp_path: Path, make_case, monkeypatch):
    """A job on S3 URIs in moto, behind the fault-injecting server (faults off until set)."""
    with faulty_s3_server(free_port()) as (url, faults):
        env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "VSR_S3_ENDPOINT_URL": url,
            "VSR_SCRATCH_DIR": str(tmp_path / "scratch"),
        }
        requests.post(f"{url}/moto-api/reset", timeout=10)  # moto's state is per process
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")  # fmt: skip
        s3.create_bucket(Bucket=BUCKET)
        s3.upload_file(str(make_case("cfr25")), BUCKET, "inputs/cfr25.mp4")
        local = tmp_path / "manifest"
        write_manifest(make_case("cfr25"), tmp_path / "unused.mp4", local)
        manifest = (local / "manifest.json").read_text()
        manifest = manifest.replace(str(make_case("cfr25")), f"s3://{BUCKET}/inputs/cfr25.mp4")
        manifest = manifest.replace(str(local), f"s3://{BUCKET}/jobs/j1").replace(
            str(tmp_path / "unused.mp4"), f"s3://{BUCKET}/outputs/j1.mp4"
        )
        s3.put_object(Bucket=BUCKET, Key="jobs/j1/manifest.json", Body=manifest.encode())
        faults.log.clear()
        yield s3, faults, env, tmp_path


def _split(tmp_path: Path, env: dict):
    return run_worker("split", "--manifest", f"s3://{BUCKET}/jobs/j1/manifest.json", cwd=tmp_path, env=env)


def _keys(s3, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


def test_split_retries_every_s3_request_that_fails_and_succeeds(s3_job) -> None:
    s3, faults, env, tmp_path = s3_job
    kinds = [INTERNAL_ERROR, SERVICE_UNAVAILABLE, SLOW_DOWN]
    # Every distinct request fails the first time it is seen (writes of the same key included).
    faults.plan = lambda method, path, seen: kinds[len(faults.log) % 3] if seen == 1 else None
    proc = _split(tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    assert _keys(s3, "jobs/j1/split/") == [
        f"jobs/j1/split/{n}" for n in ("index.json", *(f"seg_{i:05d}.mp4" for i in range(4)))
    ]
    requests = {(m, p) for m, p, _ in faults.log}
    assert len(requests) >= 8  # manifest, source, four chunks, index, progress
    for method, path in requests:  # each failed, was sent again, and got through
        answers = faults.answers(method, path)
        assert answers[0] in (500, 503) and 200 in answers[1:], (method, path, answers)
    assert {503} <= {s for _, _, s in faults.log}  # SlowDown (throttling) among them
    assert list((tmp_path / "scratch").iterdir()) == []  # downloads and uploads cleaned up


def test_storage_failing_after_every_retry_is_one_line_and_leaves_nothing(s3_job) -> None:
    s3, faults, env, tmp_path = s3_job
    chunk = f"/{BUCKET}/jobs/j1/split/seg_00001.mp4"
    faults.plan = lambda method, path, seen: INTERNAL_ERROR if (method, path) == ("PUT", chunk) else None
    proc = _split(tmp_path, {**env, "AWS_MAX_ATTEMPTS": "4"})
    message = error_line(proc, "storage_error", ExitCode.TEMPFAIL)
    assert message.startswith(f"upload to s3://{BUCKET}/jobs/j1/split/seg_00001.mp4 failed"), message
    assert "InternalError" in message and str(tmp_path) not in message
    assert faults.answers("PUT", chunk) == [500] * 4  # AWS_MAX_ATTEMPTS attempts, then it gave up
    assert "jobs/j1/split/seg_00001.mp4" not in _keys(s3, "jobs/j1/")
    assert "jobs/j1/split/index.json" not in _keys(s3, "jobs/j1/")
    assert list((tmp_path / "scratch").iterdir()) == []


def test_a_full_scratch_dir_is_no_space_naming_it(s3_job) -> None:
    """On S3 a stage writes its files in VSR_SCRATCH_DIR before uploading them."""
    s3, _, env, tmp_path = s3_job
    proc = _split(tmp_path, {**env, FAULT_ENOSPC_ENV: "split/seg_00001"})
    message = error_line(proc, "no_space", ExitCode.CANTCREAT)
    assert message == f"no space left on device writing under {tmp_path / 'scratch'}"
    assert "jobs/j1/split/seg_00001.mp4" not in _keys(s3, "jobs/j1/")
    assert list((tmp_path / "scratch").iterdir()) == []


def _broken_merge(manifest):
    return {}["frames"]  # a bug: KeyError (in the tests, so not a place the message names)


@pytest.mark.parametrize(
    ("attempt", "status"), [(None, ExitCode.SOFTWARE), ("1", ExitCode.TEMPFAIL), ("2", ExitCode.SOFTWARE)]
)
def test_a_bug_is_one_line_internal_error_retried_once(upscaled_job: Job, monkeypatch, capsys, attempt, status):
    monkeypatch.setattr(merge_stage, "run_merge", _broken_merge)
    if attempt is None:
        monkeypatch.delenv(ATTEMPT_ENV, raising=False)
    else:
        monkeypatch.setenv(ATTEMPT_ENV, attempt)
    assert cli.main(["merge", "--manifest", upscaled_job.manifest]) == int(status)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    # The place named is the project's innermost frame: the CLI line that called the stage.
    line = err.strip().splitlines()[-1]
    assert re.fullmatch(r"vsr-worker: error \[internal_error\]: KeyError: 'frames' \(cli\.py:\d+\)", line), line


def test_the_readme_error_table_is_the_contracts() -> None:
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = text.split("### Errors and exit codes", 1)[1].split("**Retries**", 1)[0]
    documented: dict[str, int] = {}
    for row in table.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].isdigit():
            documented.update((name, int(cells[0])) for name in re.findall(r"`([a-z_]+)`", cells[2]))
    assert {code.value: int(exit_code) for code, exit_code in ERROR_EXIT_CODES.items()}.items() <= documented.items()
