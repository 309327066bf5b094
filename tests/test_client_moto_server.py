"""The SDK against the cloud handler, with S3 behind a moto server on 127.0.0.1.

API calls go to the Lambda handler in-process (an adapter turns each request into an API
Gateway proxy event); presigned URLs go over HTTP to the moto server, as they would to S3.
This covers the presigned single PUT, the multipart upload (parts + complete) and the
presigned download.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from requests.adapters import BaseAdapter

from tests.api.media import small_video
from tests.api.moto_world import BUCKET, EndpointSession, FakeContext, World, build_world, proxy_event
from vsr_api.adapters import s3_storage
from vsr_client.client import Client

API = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"


class HandlerAdapter(BaseAdapter):
    """requests -> API Gateway proxy event -> the Lambda handler -> requests.Response."""

    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world

    def send(self, request, **kwargs):  # type: ignore[override]
        parts = urlsplit(request.url)
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        event = proxy_event(
            request.method, parts.path.removeprefix("/prod") or "/", raw=body, headers=dict(request.headers)
        )
        if parts.query:
            event["queryStringParameters"] = dict(p.split("=", 1) for p in parts.query.split("&"))
        answer = self.world.handler(event, FakeContext())
        response = requests.Response()
        response.status_code = answer["statusCode"]
        raw = answer["body"] or ""
        response._content = base64.b64decode(raw) if answer.get("isBase64Encoded") else raw.encode()
        response.headers.update(answer.get("headers") or {})
        response.request, response.url = request, request.url
        return response

    def close(self) -> None:
        pass


@pytest.fixture()
def world(moto_server: str, monkeypatch: pytest.MonkeyPatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    requests.post(f"{moto_server}/moto-api/reset", timeout=10)
    return build_world(EndpointSession(moto_server))


def sdk(world: World) -> Client:
    session = requests.Session()
    session.mount(API, HandlerAdapter(world))
    return Client(API, api_key="k", session=session, retries=1, backoff=0.01)


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
