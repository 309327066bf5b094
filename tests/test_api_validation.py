"""Every invalid request gets a 4xx with its code, and nothing is submitted or written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from moto import mock_aws

from tests.api.media import audio_only, small_video
from tests.api.moto_world import BUCKET, MOTO_BATCH, FakeContext, World, build_world, proxy_event

OK = {"key": "inputs/clip.mp4"}


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    text = d / "notes.mp4"
    text.write_text("this is not a video\n" * 100)
    return {"clip": small_video(d / "clip.mp4"), "audio": audio_only(d / "tone.m4a"), "text": text}


@pytest.fixture(scope="module")
def world(media: dict[str, Path]):
    with mock_aws(config=MOTO_BATCH):
        w = build_world()
        w.s3.upload_file(str(media["clip"]), BUCKET, "inputs/clip.mp4")
        w.s3.upload_file(str(media["clip"]), BUCKET, "private/clip.mp4")
        w.s3.upload_file(str(media["audio"]), BUCKET, "inputs/tone.m4a")
        w.s3.upload_file(str(media["text"]), BUCKET, "inputs/notes.mp4")
        w.s3.put_object(Bucket=BUCKET, Key="inputs/empty.mp4", Body=b"")
        yield w


CASES = [
    # (name, body or raw text, headers, status, code, field)
    ("missing key", {"scale": 2}, None, 400, "missing_key", "key"),
    ("empty key", {"key": "  "}, None, 400, "missing_key", "key"),
    ("key not a string", {"key": 42}, None, 400, "invalid_key", "key"),
    ("object not found", {"key": "inputs/nope.mp4"}, None, 404, "input_not_found", "key"),
    ("empty object", {"key": "inputs/empty.mp4"}, None, 422, "empty_input", "key"),
    ("not a video", {"key": "inputs/notes.mp4"}, None, 422, "not_a_video", "key"),
    ("audio only", {"key": "inputs/tone.m4a"}, None, 422, "audio_only", "key"),
    ("scale 3", {**OK, "scale": 3}, None, 400, "invalid_scale", "scale"),
    ("scale text", {**OK, "scale": "big"}, None, 400, "invalid_scale", "scale"),
    ("env", {**OK, "env": "cheap"}, None, 400, "invalid_env", "env"),
    ("task", {**OK, "task": "train"}, None, 400, "invalid_task", "task"),
    ("segment_time zero", {**OK, "segment_time": 0}, None, 400, "invalid_segment_time", "segment_time"),
    ("segment_time below min", {**OK, "segment_time": 0.5}, None, 400, "invalid_segment_time", "segment_time"),
    ("segment_time above max", {**OK, "segment_time": 601}, None, 400, "invalid_segment_time", "segment_time"),
    ("segment_time text", {**OK, "segment_time": "soon"}, None, 400, "invalid_segment_time", "segment_time"),
    ("segment_time bool", {**OK, "segment_time": True}, None, 400, "invalid_segment_time", "segment_time"),
    ("key in the work prefix", {"key": "jobs/other-job/split/seg_00000.mp4"}, None, 403, "key_reserved", "key"),
    ("key in the output prefix", {"key": "outputs/other-job/clip_x2.mp4"}, None, 403, "key_reserved", "key"),
    ("key with ..", {"key": "inputs/../private/clip.mp4"}, None, 400, "invalid_key", "key"),
    ("absolute key", {"key": "/inputs/clip.mp4"}, None, 400, "invalid_key", "key"),
    ("other bucket", {"key": "s3://other/inputs/clip.mp4"}, None, 400, "invalid_key", "key"),
    ("model", {**OK, "model": "../../etc"}, None, 400, "invalid_model", "model"),
    ("output key", {**OK, "output_key": "outputs/../x.mp4"}, None, 400, "invalid_output_key", "output_key"),
    ("output key suffix", {**OK, "output_key": "result.txt"}, None, 400, "invalid_output_key", "output_key"),
    ("unknown field", {**OK, "scael": 4}, None, 400, "unknown_field", "scael"),
    ("not JSON", "{key: clip.mp4", None, 400, "invalid_json", None),
    ("JSON array", [OK], None, 400, "invalid_json", None),
    ("empty body", "", None, 400, "invalid_json", None),
    ("body too big", {**OK, "idempotency_key": "x" * 20000}, None, 413, "body_too_large", None),
    ("wrong content type", "key=inputs/clip.mp4", {"Content-Type": "multipart/form-data"}, 415,
     "unsupported_media_type", None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "headers", "status", "code", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_invalid_request_is_rejected_and_submits_nothing(world: World, body, headers, status, code, field) -> None:
    before = world.s3.list_objects_v2(Bucket=BUCKET, Prefix="jobs/").get("KeyCount", 0)
    raw = body if isinstance(body, str) else None
    event = proxy_event("POST", "/", None if raw is not None else body, headers=headers, raw=raw)
    response = world.handler(event, FakeContext())
    error = json.loads(response["body"])["error"]
    assert (response["statusCode"], error["code"], error["field"]) == (status, code, field), error["message"]
    assert error["message"]
    assert world.calls["SubmitJob"] == []
    assert world.s3.list_objects_v2(Bucket=BUCKET, Prefix="jobs/").get("KeyCount", 0) == before
    assert world.service.store.list_recent(10) == []


def test_limits_come_from_settings(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(world.settings, "max_input_bytes", 10_000)
    too_large = world.handler(proxy_event("POST", "/", OK), FakeContext())
    assert too_large["statusCode"] == 413 and '"input_too_large"' in too_large["body"]
    monkeypatch.setattr(world.settings, "max_input_bytes", 10**9)
    monkeypatch.setattr(world.settings, "max_duration_seconds", 1.5)
    too_long = world.handler(proxy_event("POST", "/", OK), FakeContext())
    assert too_long["statusCode"] == 422 and '"input_too_long"' in too_long["body"]
    assert world.calls["SubmitJob"] == []


def test_form_labelled_json_from_plain_curl_is_accepted(world: World) -> None:
    """`curl -d '{...}'` without -H sends JSON labelled as a form: the seed's cURL still works."""
    event = proxy_event("POST", "/", raw=json.dumps(OK), headers={"Content-Type": "application/x-www-form-urlencoded"})
    response = world.handler(event, FakeContext())
    assert response["statusCode"] == 202, response["body"]
    world.calls["SubmitJob"].clear()
    _forget_jobs(world)


def _forget_jobs(world: World) -> None:
    table = world.session.client("dynamodb")
    for item in table.scan(TableName=world.settings.table)["Items"]:
        table.delete_item(TableName=world.settings.table, Key={"job_id": item["job_id"]})
    for obj in world.s3.list_objects_v2(Bucket=BUCKET, Prefix="jobs/").get("Contents", []):
        world.s3.delete_object(Bucket=BUCKET, Key=obj["Key"])
