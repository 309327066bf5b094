"""The Lambda handler against moto (S3, DynamoDB, Batch without Docker): what a submit submits."""

from __future__ import annotations

import json
from pathlib import Path

import botocore.session
import pytest
from botocore.validate import ParamValidator
from moto import mock_aws

from tests.api.media import small_video
from tests.api.moto_world import BUCKET, MOTO_BATCH, FakeContext, World, build_world, proxy_event
from vsr_client.api_models import JobAccepted
from vsr_client.contract import Manifest


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_video(tmp_path_factory.mktemp("media") / "clip.mp4")


@pytest.fixture()
def world(clip: Path):
    with mock_aws(config=MOTO_BATCH):
        w = build_world()
        w.s3.upload_file(str(clip), BUCKET, "inputs/clip.mp4")
        yield w


def call(world: World, method: str, path: str, body=None, **kw) -> tuple[int, dict]:
    response = world.handler(proxy_event(method, path, body, **kw), FakeContext())
    return response["statusCode"], json.loads(response["body"])


def submitted(world: World) -> dict[str, dict]:
    return {p["tags"]["vsr:stage"]: p for p in world.calls["SubmitJob"]}


def test_seed_request_submits_split_then_upscale_array_then_merge(world: World) -> None:
    status, body = call(world, "POST", "/", {"key": "inputs/clip.mp4", "scale": 2, "segment_time": 1})
    assert status == 202
    job = JobAccepted.model_validate(body)
    assert job.segments == 2
    assert job.status_url == f"https://abc123.execute-api.eu-west-1.amazonaws.com/prod/jobs/{job.job_id}"
    stages = submitted(world)
    assert [p["tags"]["vsr:stage"] for p in world.calls["SubmitJob"]] == ["split", "upscale", "merge"]
    ids = json_ids(world, job.job_id)
    batch_jobs = world.batch.describe_jobs(jobs=list(ids.values()))["jobs"]
    assert "dependsOn" not in stages["split"]
    assert stages["upscale"]["arrayProperties"] == {"size": 2}
    assert stages["upscale"]["dependsOn"] == [{"jobId": ids["split"]}]
    assert stages["merge"]["dependsOn"] == [{"jobId": ids["upscale"]}]
    assert "arrayProperties" not in stages["merge"]
    manifest_uri = f"s3://{BUCKET}/jobs/{job.job_id}/manifest.json"
    for stage, params in stages.items():
        # Split and merge run on the CPU queue, upscale on the accelerator's (both spot here).
        queue = world.settings.queue_spot if stage == "upscale" else world.settings.queue_cpu_spot
        assert params["jobQueue"] == queue and world.settings.queue_spot != world.settings.queue_cpu_spot
        assert params["jobDefinition"] == world.settings.stage_definitions()[stage]
        assert params["parameters"] == {"manifest": manifest_uri, "job_id": job.job_id}
        assert params["tags"]["vsr:job-id"] == job.job_id
        assert job.job_id in params["jobName"]
    assert {j["jobName"] for j in batch_jobs} == {f"vsr-{job.job_id}-{s}" for s in stages}
    upscale = next(j for j in batch_jobs if j["jobId"] == ids["upscale"])
    assert upscale["arrayProperties"]["size"] == 2
    manifest = Manifest.model_validate_json(
        world.s3.get_object(Bucket=BUCKET, Key=f"jobs/{job.job_id}/manifest.json")["Body"].read()
    )
    assert manifest.source == f"s3://{BUCKET}/inputs/clip.mp4"
    assert manifest.output == f"s3://{BUCKET}/{job.output_key}" and job.output_key.startswith("outputs/")
    assert manifest.work == f"s3://{BUCKET}/jobs/{job.job_id}"
    assert (manifest.plan.count, manifest.scale, manifest.task) == (2, 2, "inference")


def json_ids(world: World, job_id: str) -> dict[str, str]:
    return world.service.store.get(job_id).scheduler_ids


def test_single_segment_upscale_is_a_plain_job_on_the_on_demand_queue(world: World) -> None:
    status, body = call(world, "POST", "/jobs", {"key": "inputs/clip.mp4", "env": "onDemand", "scale": 4})
    assert status == 202 and body["segments"] == 1
    stages = submitted(world)
    assert "arrayProperties" not in stages["upscale"]
    queues = {name: p["jobQueue"] for name, p in stages.items()}
    s = world.settings
    assert queues == {"split": s.queue_cpu_on_demand, "upscale": s.queue_on_demand, "merge": s.queue_cpu_on_demand}


def test_submit_job_requests_match_botocore_model(world: World) -> None:
    call(world, "POST", "/", {"key": "inputs/clip.mp4", "segment_time": 1})
    model = botocore.session.get_session().get_service_model("batch").operation_model("SubmitJob")
    assert len(world.calls["SubmitJob"]) == 3
    for params in world.calls["SubmitJob"]:
        report = ParamValidator().validate(params, model.input_shape)
        assert not report.has_errors(), report.generate_report()


def test_same_idempotency_key_returns_same_job_and_submits_nothing_new(world: World) -> None:
    body = {"key": "inputs/clip.mp4", "segment_time": 1, "idempotency_key": "order-42"}
    first_status, first = call(world, "POST", "/", body)
    second_status, second = call(world, "POST", "/", body)
    assert (first_status, second_status) == (202, 200)
    assert second["job_id"] == first["job_id"] and second["idempotent_replay"] is True
    assert len(world.calls["SubmitJob"]) == 3
    status, conflict = call(world, "POST", "/", {**body, "scale": 4})
    assert (status, conflict["error"]["code"]) == (409, "idempotency_conflict")
    assert len(world.calls["SubmitJob"]) == 3


def test_idempotency_key_header_works_like_the_field(world: World) -> None:
    body = {"key": "inputs/clip.mp4"}
    _, first = call(world, "POST", "/", body, headers={"Idempotency-Key": "abc"})
    _, second = call(world, "POST", "/", body, headers={"Idempotency-Key": "abc"})
    assert first["job_id"] == second["job_id"]
    assert len(world.calls["SubmitJob"]) == 3


def test_submit_failing_half_way_terminates_what_was_submitted(world: World) -> None:
    world.settings.job_definition_merge = "no-such-definition"
    status, body = call(world, "POST", "/", {"key": "inputs/clip.mp4", "segment_time": 1, "idempotency_key": "k1"})
    assert status == 502 and body["error"]["code"] == "submit_failed"
    ids = [t["jobId"] for t in world.calls["TerminateJob"]]
    submitted_ids = [j["jobId"] for j in _listed(world) if ":" not in j["jobId"]]  # not array children
    assert sorted(ids) == sorted(submitted_ids) and len(ids) == 2
    # The key is free again: a retry once the stack is fixed submits a fresh job.
    world.settings.job_definition_merge = world.settings.job_definition_split
    status, _ = call(world, "POST", "/", {"key": "inputs/clip.mp4", "segment_time": 1, "idempotency_key": "k1"})
    assert status == 202


def _listed(world: World) -> list[dict]:
    out = []
    for queue in (world.settings.queue_spot, world.settings.queue_cpu_spot):
        for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"):
            out += world.batch.list_jobs(jobQueue=queue, jobStatus=status)["jobSummaryList"]
    return out


def test_status_of_finished_job_has_progress_and_download_url(world: World) -> None:
    _, job = call(world, "POST", "/", {"key": "inputs/clip.mp4", "segment_time": 1})
    status, body = call(world, "GET", f"/jobs/{job['job_id']}")
    assert status == 200
    assert body["state"] == "succeeded"  # moto's batch_simple finishes every job at once
    assert body["progress"]["upscale"]["done"] == 2 and body["progress"]["upscale"]["total"] == 2
    assert body["progress"]["merge"]["state"] == "succeeded"
    assert body["download_url"].startswith(f"https://{BUCKET}.s3.eu-west-1.amazonaws.com/outputs/")
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in body["download_url"]
    assert job["output_key"] in body["download_url"]
    _, listing = call(world, "GET", "/jobs")
    assert [j["job_id"] for j in listing["jobs"]] == [job["job_id"]]


def test_status_reports_failed_batch_jobs(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")
    _, job = call(world, "POST", "/", {"key": "inputs/clip.mp4"})
    _, body = call(world, "GET", f"/jobs/{job['job_id']}")
    assert body["state"] == "failed"
    assert body["failure_reason"].startswith("split:")
    assert body["download_url"] is None


def test_unknown_job_and_route_are_404(world: World) -> None:
    assert call(world, "GET", "/jobs/nope")[1]["error"]["code"] == "job_not_found"
    status, body = call(world, "GET", "/nothing-here")
    assert (status, body["error"]["code"]) == (404, "route_not_found")


def test_cancel_of_finished_job_is_a_conflict(world: World) -> None:
    _, job = call(world, "POST", "/", {"key": "inputs/clip.mp4"})
    status, body = call(world, "DELETE", f"/jobs/{job['job_id']}")
    assert (status, body["error"]["code"]) == (409, "job_not_cancellable")
    assert world.calls["TerminateJob"] == []


def test_upload_gives_presigned_put_and_multipart_for_large_files(world: World) -> None:
    status, small = call(world, "POST", "/uploads", {"filename": "my clip.mp4", "size": 1000})
    assert status == 201
    assert small["key"].startswith("inputs/") and small["key"].endswith("/my_clip.mp4")
    # SigV4 on the bucket's regional endpoint: SigV2 (botocore's default here) is refused by
    # buckets created after June 2020, and the global endpoint redirects during a bucket's first day.
    assert small["url"].startswith(f"https://{BUCKET}.s3.eu-west-1.amazonaws.com/inputs/") and small["parts"] == []
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in small["url"] and "AWSAccessKeyId" not in small["url"]
    size = 300 * 1024**2
    _, big = call(world, "POST", "/uploads", {"key": "inputs/big.mp4", "size": size})
    assert big["url"] is None and big["upload_id"]
    assert len(big["parts"]) == -(-size // big["part_size"]) and big["part_size"] >= 64 * 1024**2
    assert "uploadId=" in big["complete_url"] and big["key"] == "inputs/big.mp4"
    status, too_big = call(world, "POST", "/uploads", {"size": world.settings.max_input_bytes + 1})
    assert (status, too_big["error"]["code"]) == (413, "input_too_large")


def test_replay_needs_no_probe_and_a_rejected_request_frees_its_key(world: World) -> None:
    status, missing = call(world, "POST", "/", {"key": "inputs/gone.mp4", "idempotency_key": "retry-me"})
    assert (status, missing["error"]["code"]) == (404, "input_not_found")
    world.s3.copy_object(Bucket=BUCKET, Key="inputs/gone.mp4", CopySource={"Bucket": BUCKET, "Key": "inputs/clip.mp4"})
    status, first = call(world, "POST", "/", {"key": "inputs/gone.mp4", "idempotency_key": "retry-me"})
    assert status == 202  # the failed attempt did not keep the key
    world.s3.delete_object(Bucket=BUCKET, Key="inputs/gone.mp4")
    status, replay = call(world, "POST", "/", {"key": "inputs/gone.mp4", "idempotency_key": "retry-me"})
    assert (status, replay["job_id"]) == (200, first["job_id"])  # answered from the record, no S3 read
    assert len(world.calls["SubmitJob"]) == 3
