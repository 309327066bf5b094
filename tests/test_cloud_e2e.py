"""The cloud path end to end without AWS: moto server (S3, DynamoDB, Batch API) on
127.0.0.1, the Lambda handler in-process, and the Batch emulator running the jobs that
were actually submitted as worker subprocesses against moto S3."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests import oracle
from tests.api.moto_world import BUCKET, REGION, EndpointSession, FakeContext, World, build_world, proxy_event
from tests.batch_emulator import BatchEmulator, python_worker_env
from vsr_worker import storage

CHECKPOINT_FRAMES = 10


@pytest.fixture()
def cloud(moto_server: str, monkeypatch: pytest.MonkeyPatch):
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": moto_server,
        "VSR_CHECKPOINT_FRAMES": str(CHECKPOINT_FRAMES),
        "VSR_THREADS": "1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    storage.reset_s3_client()
    requests.post(f"{moto_server}/moto-api/reset", timeout=10)
    world = build_world(EndpointSession(moto_server))
    yield world, env
    storage.reset_s3_client()


def submit(world: World, body: dict) -> dict:
    answer = world.handler(proxy_event("POST", "/", body), FakeContext())
    assert answer["statusCode"] == 202, answer["body"]
    return json.loads(answer["body"])


def run_job(world: World, env: dict, body: dict, faults: dict | None = None) -> tuple[dict, BatchEmulator]:
    """Submit through the handler, then run exactly the submitted jobs."""
    before = len(world.calls["SubmitJob"])
    accepted = submit(world, body)
    requests_sent = world.calls["SubmitJob"][before:]
    assert [r["jobName"].rsplit("-", 1)[-1] for r in requests_sent] == ["split", "upscale", "merge"]
    ids = {}
    s = world.settings
    for queue in (s.queue_spot, s.queue_on_demand, s.queue_cpu_spot, s.queue_cpu_on_demand):
        for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"):
            for job in world.batch.list_jobs(jobQueue=queue, jobStatus=status)["jobSummaryList"]:
                if ":" not in job["jobId"]:  # array children are "<parent>:<index>"
                    ids[job["jobName"]] = job["jobId"]
    emulator = BatchEmulator(world.batch, {**env, **python_worker_env()}, faults=faults or {})
    emulator.run(requests_sent, ids)
    return accepted, emulator


def upload_source(world: World, make_case, name: str) -> tuple[str, Path]:
    src = make_case(name)
    key = f"inputs/{name}.mp4"
    world.s3.upload_file(str(src), BUCKET, key)
    return key, src


def download(world: World, key: str, path: Path) -> Path:
    world.s3.download_file(BUCKET, key, str(path))
    return path


def job_objects(world: World, job_id: str) -> list[str]:
    prefix = f"{world.settings.work_prefix}{job_id}/"
    pages = world.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"][len(prefix) :] for page in pages for o in page.get("Contents", []))


def test_submitted_jobs_produce_a_frame_exact_output_and_leave_no_intermediates(cloud, make_case, tmp_path):
    world, env = cloud
    key, src = upload_source(world, make_case, "tracks_and_subs")
    accepted, _ = run_job(world, env, {"key": key, "scale": 2, "segment_time": 1})
    out = download(world, accepted["output_key"], tmp_path / "out.mp4")
    assert oracle.video_frame_times(out) == oracle.video_frame_times(src)
    assert [s["codec_type"] for s in oracle.streams(out)] == ["video", "audio", "audio", "subtitle"]
    for index in (1, 2, 3):
        assert oracle.packet_hashes(out, index) == oracle.packet_hashes(src, index)
    left = job_objects(world, accepted["job_id"])
    assert not [k for k in left if k.startswith(("split/", "upscaled/", "debug/"))], left
    assert "manifest.json" in left and "result.json" in left
    status = world.handler(proxy_event("GET", f"/jobs/{accepted['job_id']}"), FakeContext())
    body = json.loads(status["body"])
    assert body["state"] == "succeeded" and body.get("download_url"), body


def test_killed_upscale_child_resumes_and_the_result_is_identical(cloud, make_case, tmp_path):
    world, env = cloud
    key, src = upload_source(world, make_case, "cfr25")
    clean, _ = run_job(world, env, {"key": key, "segment_time": 2})
    faulty, emulator = run_job(
        world, env, {"key": key, "segment_time": 2}, faults={("upscale", 1): {"VSR_FAULT_EXIT_AFTER_PARTS": "2"}}
    )
    killed = [a for a in emulator.attempts if a.index == 1 and a.exit_code != 0]
    assert len(killed) == 1 and killed[0].exit_code == 137
    resumed = [a for a in emulator.attempts if a.index == 1 and a.exit_code == 0]
    assert "resuming after 2 stored part(s), skipping 20 frame(s)" in resumed[0].log
    a = download(world, clean["output_key"], tmp_path / "clean.mp4")
    b = download(world, faulty["output_key"], tmp_path / "faulty.mp4")
    assert oracle.packet_hashes(b, 0) == oracle.packet_hashes(a, 0)  # the video stream, byte for byte
    assert oracle.video_frame_times(b) == oracle.video_frame_times(src)


def test_debug_task_keeps_every_documented_intermediate(cloud, make_case):
    world, env = cloud
    key, _ = upload_source(world, make_case, "no_audio")
    accepted, _ = run_job(world, env, {"key": key, "segment_time": 2, "task": "debug"})
    left = set(job_objects(world, accepted["job_id"]))
    segments = accepted["segments"]
    expected = {
        "manifest.json",
        "result.json",
        "split/index.json",
        "debug/probe.json",
        "debug/logs/split_00000.log",
        "debug/logs/merge_00000.log",
        "progress/split_00000.json",
        "progress/merge_00000.json",
    }
    for i in range(segments):
        expected |= {
            f"split/seg_{i:05d}.mp4",
            f"upscaled/seg_{i:05d}.json",
            f"upscaled/seg_{i:05d}/p00000.mp4",
            f"upscaled/seg_{i:05d}/p00000.json",
            f"debug/seg_{i:05d}_before.png",
            f"debug/seg_{i:05d}_after.png",
            f"debug/logs/upscale_{i:05d}.log",
            f"progress/upscale_{i:05d}.json",
        }
    assert expected <= left, sorted(expected - left)
