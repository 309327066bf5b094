"""The worker's storage layer on s3:// URIs (moto), and the whole graph run against it."""

from __future__ import annotations

import os
import uuid
from unittest import mock

import boto3
import pytest
from moto import mock_aws

from tests import oracle
from vsr_client.contract import ErrorCode, Manifest, VsrError, plan_segments
from vsr_client.jobgraph import ARRAY_INDEX_ENV, build_job_graph
from vsr_worker import cli, layout, storage
from vsr_worker.media.probe import probe

BUCKET = "vsr-test-bucket"


@pytest.fixture
def s3(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("VSR_S3_ENDPOINT_URL", raising=False)
    with mock_aws():
        storage.reset_s3_client()
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client
    storage.reset_s3_client()


def test_json_round_trip_and_exists(s3):
    uri = f"s3://{BUCKET}/jobs/j1/manifest.json"
    assert not storage.exists(uri)
    storage.write_json(uri, {"a": 1})
    assert storage.exists(uri) and storage.read_json(uri) == {"a": 1}


def test_missing_object_is_input_not_found(s3):
    with pytest.raises(VsrError) as err, storage.input_file(f"s3://{BUCKET}/inputs/nope.mp4"):
        pass
    assert err.value.code == ErrorCode.INPUT_NOT_FOUND
    with pytest.raises(FileNotFoundError):
        storage.read_bytes(f"s3://{BUCKET}/nope.json")


def test_failed_write_uploads_nothing(s3):
    uri = f"s3://{BUCKET}/outputs/out.mp4"
    with pytest.raises(RuntimeError), storage.output_file(uri) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("encoder crashed")
    assert not storage.exists(uri)


def test_large_file_goes_up_and_down_in_parts(s3, tmp_path):
    data = os.urandom(40 * 2**20)  # above the 16 MiB multipart threshold
    uri = f"s3://{BUCKET}/big.bin"
    with storage.output_file(uri) as tmp:
        tmp.write_bytes(data)
    head = s3.head_object(Bucket=BUCKET, Key="big.bin")
    assert head["ContentLength"] == len(data) and "-" in head["ETag"]  # a multipart upload's ETag
    with storage.input_file(uri) as local:
        assert local.read_bytes() == data
        kept = local
    assert not kept.exists()  # the download is cleaned up


def test_remove_tree_keeps_what_is_asked(s3):
    for name in ("a", "b/c", "d"):
        storage.write_bytes(f"s3://{BUCKET}/jobs/j/{name}", b"x")
    storage.remove_tree(f"s3://{BUCKET}/jobs/j", keep=[f"s3://{BUCKET}/jobs/j/d"])
    assert storage.list_prefix(f"s3://{BUCKET}/jobs/j") == [f"s3://{BUCKET}/jobs/j/d"]


def test_with_suffix_leaves_dotted_bucket_names_alone():
    assert storage.with_suffix("s3://my.bucket/out/a.mp4", ".mkv") == "s3://my.bucket/out/a.mkv"
    assert storage.with_suffix("s3://my.bucket/out/a", ".mkv") == "s3://my.bucket/out/a.mkv"


def test_whole_graph_on_s3_uris(s3, make_case, tmp_path):
    src = make_case("tracks_and_subs")
    s3.upload_file(str(src), BUCKET, "inputs/src.mp4")
    job = uuid.uuid4().hex[:8]
    work = f"s3://{BUCKET}/jobs/{job}"
    plan = plan_segments(probe(src).duration, 1.0)
    manifest = Manifest(
        job_id=job,
        source=f"s3://{BUCKET}/inputs/src.mp4",
        work=work,
        output=f"s3://{BUCKET}/outputs/{job}.mp4",
        model="bicubic",
        plan=plan,
    )
    uri = layout.manifest(work)
    storage.write_json(uri, manifest.model_dump(mode="json"))
    for stage in build_job_graph(uri, plan.count):
        for index in range(stage.array_size) if stage.array_size else [None]:
            env = {ARRAY_INDEX_ENV: str(index)} if index is not None else {}
            with mock.patch.dict(os.environ, env):
                assert cli.main(stage.command[1:]) == 0
    out = tmp_path / "out.mp4"
    s3.download_file(BUCKET, f"outputs/{job}.mp4", str(out))
    assert oracle.video_frame_times(out) == oracle.video_frame_times(src)
    assert oracle.packet_hashes(out, 2) == oracle.packet_hashes(src, 2)
    assert storage.read_json(layout.result(work))["output"] == manifest.output
