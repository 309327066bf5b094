"""The SDK against the cloud handler, with S3 behind a moto server on 127.0.0.1.

API calls go to the Lambda handler in-process (an adapter turns each request into an API
Gateway proxy event); presigned URLs go over HTTP to the moto server, as they would to S3.
This covers the presigned single PUT, the multipart upload (parts + complete) and the
presigned download; every call they make must be one the stack's IAM policies allow.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests

from tests.api.media import small_video
from tests.api.moto_world import BUCKET, EndpointSession, World, build_world, sdk
from vsr_api.adapters import s3_storage


@pytest.fixture()
def world(moto, monkeypatch: pytest.MonkeyPatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    requests.post(f"{moto.url}/moto-api/reset", timeout=10)
    start = len(moto.recorder.calls)
    world = build_world(EndpointSession(moto.url))
    yield world
    calls = moto.recorder.calls[start:]
    assert [c for c in calls if world.principal(c)], "no call of the Lambda was recorded"
    assert world.iam_problems(calls) == []


def test_upload_submit_wait_download_through_presigned_urls(world: World, tmp_path: Path) -> None:
    client = sdk(world)
    clip = small_video(tmp_path / "clip.mp4")
    key = client.upload(clip)
    assert key.startswith("inputs/") and key.endswith("/clip.mp4")
    assert world.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == clip.read_bytes()
    job = client.submit(key, segment_time=1)
    assert job.segments == 2
    status = client.wait(job.job_id, interval=0.01, timeout=10)  # moto finishes Batch jobs at once
    assert status.state == "succeeded"
    # The worker would have written the result; put one there to download.
    world.s3.put_object(Bucket=BUCKET, Key=job.output_key, Body=b"upscaled bytes")
    assert client.download(job.job_id, tmp_path / "out.mp4").read_bytes() == b"upscaled bytes"


def test_large_upload_goes_in_parts_and_completes(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_storage, "MULTIPART_THRESHOLD", 6 * 1024**2)
    monkeypatch.setattr(s3_storage, "MIN_PART_SIZE", 5 * 1024**2)
    data = os.urandom(11 * 1024**2 + 123)
    path = tmp_path / "big.mp4"
    path.write_bytes(data)
    key = sdk(world).upload(path, key="inputs/big/big.mp4")
    assert key == "inputs/big/big.mp4"
    head = world.s3.head_object(Bucket=BUCKET, Key=key)
    assert head["ContentLength"] == len(data) and head["ETag"].endswith('-3"')  # three parts
    assert world.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == data
