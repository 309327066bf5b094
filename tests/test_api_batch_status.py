"""Job status from Batch job states (responses shaped and checked by botocore's Stubber)."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from vsr_api.adapters.batch_scheduler import BatchScheduler
from vsr_api.job_record import JobRecord
from vsr_api.settings import ApiSettings

IDS = {"split": "split-1", "upscale": "up-1", "merge": "merge-1"}


def record(state: str = "queued") -> JobRecord:
    return JobRecord(
        job_id="job-1",
        state=state,
        key="inputs/a.mp4",
        scale=2,
        task="inference",
        env="spot",
        model="bicubic",
        segment_time=10,
        segments=3,
        output_key="outputs/job-1/a_x2.mp4",
        work_prefix="jobs/job-1",
        manifest_key="jobs/job-1/manifest.json",
        scheduler_ids=IDS,
    )


def job(job_id: str, status: str, **extra) -> dict:
    return {
        "jobName": f"vsr-job-1-{job_id}",
        "jobId": job_id,
        "jobQueue": "q",
        "status": status,
        "startedAt": 1,
        "jobDefinition": "jd",
        **extra,
    }


@pytest.fixture()
def batch():
    client = boto3.client("batch", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def scheduler(client) -> BatchScheduler:
    return BatchScheduler(client, ApiSettings(bucket="b"))


def test_failed_array_child_fails_the_job_with_the_childs_reason(batch) -> None:
    client, stub = batch
    stub.add_response(
        "describe_jobs",
        {
            "jobs": [
                job("split-1", "SUCCEEDED"),
                job(
                    "up-1",
                    "FAILED",
                    statusReason="Array Child Job failed",
                    arrayProperties={"size": 3, "statusSummary": {"SUCCEEDED": 2, "FAILED": 1}},
                ),
                job("merge-1", "FAILED", statusReason="Dependent Job failed"),
            ]
        },
        {"jobs": list(IDS.values())},
    )
    stub.add_response(
        "list_jobs",
        {"jobSummaryList": [{"jobId": "up-1:2", "jobName": "x", "arrayProperties": {"index": 2}, "status": "FAILED"}]},
        {"arrayJobId": "up-1", "jobStatus": "FAILED"},
    )
    stub.add_response(
        "describe_jobs",
        {
            "jobs": [
                job(
                    "up-1:2",
                    "FAILED",
                    statusReason="Essential container in task exited",
                    container={"exitCode": 65, "reason": "corrupt_input"},
                )
            ]
        },
        {"jobs": ["up-1:2"]},
    )
    seen = scheduler(client).observe(record())
    assert seen.state == "failed"
    assert seen.failure_reason == "upscale: child 2: Essential container in task exited; exit code 65; corrupt_input"
    assert (seen.progress.upscale.done, seen.progress.upscale.failed, seen.progress.upscale.total) == (2, 1, 3)
    assert seen.progress.split.state == "succeeded" and seen.progress.merge.state == "failed"


def test_running_array_counts_finished_children(batch) -> None:
    client, stub = batch
    stub.add_response(
        "describe_jobs",
        {
            "jobs": [
                job("split-1", "SUCCEEDED"),
                job("up-1", "PENDING", arrayProperties={"size": 3, "statusSummary": {"SUCCEEDED": 1, "RUNNING": 2}}),
                job("merge-1", "PENDING"),
            ]
        },
        {"jobs": list(IDS.values())},
    )
    seen = scheduler(client).observe(record())
    assert seen.state == "running" and seen.failure_reason is None
    assert (seen.progress.upscale.state, seen.progress.upscale.done) == ("running", 1)
    assert seen.progress.merge.state == "pending"


def test_nothing_started_is_queued(batch) -> None:
    client, stub = batch
    stub.add_response(
        "describe_jobs",
        {"jobs": [job("split-1", "RUNNABLE"), job("up-1", "PENDING"), job("merge-1", "PENDING")]},
        {"jobs": list(IDS.values())},
    )
    assert scheduler(client).observe(record()).state == "queued"


def test_cancel_terminates_every_stage_last_first(batch) -> None:
    client, stub = batch
    for job_id in ("merge-1", "up-1", "split-1"):
        stub.add_response("terminate_job", {}, {"jobId": job_id, "reason": "vsr: cancelled by request (vsr job job-1)"})
    scheduler(client).cancel(record())
