"""No job writes over an existing object or another job's result: the Lambda (moto) and the
local server (real HTTP) apply the same rules, and a replay of the same request still works."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import pytest
import requests
from moto import mock_aws

from tests.api.media import small_video
from tests.api.moto_world import BUCKET, MOTO_BATCH, FakeContext, World, build_world, proxy_event
from vsr_api.local.server import LocalApi, LocalServer


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_video(tmp_path_factory.mktemp("media") / "clip.mp4")


# -- the Lambda path -----------------------------------------------------------------------------


@pytest.fixture()
def world(clip: Path):
    with mock_aws(config=MOTO_BATCH):
        w = build_world()
        w.s3.upload_file(str(clip), BUCKET, "inputs/clip.mp4")
        yield w


def call(world: World, method: str, path: str, body=None) -> tuple[int, dict, dict]:
    response = world.handler(proxy_event(method, path, body), FakeContext())
    headers = dict(response.get("headers") or {})
    headers.update({k: ", ".join(v) for k, v in (response.get("multiValueHeaders") or {}).items()})
    return response["statusCode"], json.loads(response["body"]), headers


def test_lambda_refuses_an_output_key_inside_another_jobs_result_folder(world: World) -> None:
    _, first, _ = call(world, "POST", "/", {"key": "inputs/clip.mp4"})
    submitted = len(world.calls["SubmitJob"])
    for requested in (first["output_key"], first["output_key"].removeprefix("outputs/")):
        status, body, _ = call(world, "POST", "/", {"key": "inputs/clip.mp4", "output_key": requested})
        assert (status, body["error"]["code"], body["error"]["field"]) == (403, "key_reserved", "output_key")
    assert len(world.calls["SubmitJob"]) == submitted


def test_lambda_refuses_an_output_key_that_names_an_existing_object(world: World) -> None:
    world.s3.put_object(Bucket=BUCKET, Key="outputs/mine.mkv", Body=b"someone's result")
    for requested in ("mine.mkv", "mine.mp4"):  # merge may write .mkv for a requested .mp4
        status, body, _ = call(world, "POST", "/", {"key": "inputs/clip.mp4", "output_key": requested})
        assert (status, body["error"]["code"]) == (409, "output_exists")
    assert world.calls["SubmitJob"] == []
    assert world.s3.get_object(Bucket=BUCKET, Key="outputs/mine.mkv")["Body"].read() == b"someone's result"


def test_lambda_gives_an_output_key_to_one_job_and_replays_the_same_request(world: World) -> None:
    body = {"key": "inputs/clip.mp4", "output_key": "shared.mp4", "idempotency_key": "first"}
    status, first, _ = call(world, "POST", "/", body)
    assert status == 202 and first["output_key"] == "outputs/shared.mp4"
    status, other, _ = call(world, "POST", "/", {**body, "idempotency_key": "second"})
    assert (status, other["error"]["code"]) == (409, "output_exists")
    assert first["job_id"] in other["error"]["message"]
    world.s3.put_object(Bucket=BUCKET, Key="outputs/shared.mp4", Body=b"result")  # the job finished
    status, replay, _ = call(world, "POST", "/", body)
    assert (status, replay["job_id"], replay["idempotent_replay"]) == (200, first["job_id"], True)
    assert len(world.calls["SubmitJob"]) == 3


def test_lambda_frees_the_output_key_of_a_failed_job(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")  # moto fails every Batch job
    status, failed, _ = call(world, "POST", "/", {"key": "inputs/clip.mp4", "output_key": "retry.mp4"})
    assert status == 202
    # Nobody asked for its status: the next submit finds out the holder failed.
    status, again, _ = call(world, "POST", "/", {"key": "inputs/clip.mp4", "output_key": "retry.mp4"})
    assert status == 202 and again["job_id"] != failed["job_id"]


def test_lambda_answers_unserved_methods_with_405_and_allow(world: World) -> None:
    for method, path, allow in (("PATCH", "/jobs", "GET, HEAD, POST"), ("OPTIONS", "/uploads", "POST")):
        status, body, headers = call(world, method, path)
        assert (status, body["error"]["code"], headers.get("Allow")) == (405, "method_not_allowed", allow)


def test_lambda_refuses_bad_keys_and_oversized_plans_with_4xx(world: World) -> None:
    for body, code in (
        ({"key": "inputs/\ud800.mp4"}, "invalid_key"),
        ({"key": "inputs/" + "x" * 256 + ".mp4"}, "invalid_key"),
        ({"key": "inputs/clip.mp4", "output_key": "\udc80.mp4"}, "invalid_output_key"),
    ):
        status, answer, _ = call(world, "POST", "/", body)
        assert (status, answer["error"]["code"]) == (400, code)
    world.settings.max_duration_seconds = 1e9
    world.settings.segment_time_min = 0.0001  # lets 2 s of video ask for 20,000 segments
    status, answer, _ = call(world, "POST", "/", {"key": "inputs/clip.mp4", "segment_time": 0.0001})
    assert (status, answer["error"]["code"]) == (422, "too_many_segments")
    fits = float(answer["error"]["message"].rsplit("use segment_time ", 1)[1].split()[0])
    assert world.calls["SubmitJob"] == []
    status, accepted, _ = call(world, "POST", "/", {"key": "inputs/clip.mp4", "segment_time": fits})
    assert status == 202 and accepted["segments"] <= 10_000


# -- the local server ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, clip: Path):
    data = tmp_path_factory.mktemp("data")
    (data / "inputs").mkdir()
    (data / "inputs" / "clip.mp4").write_bytes(clip.read_bytes())
    srv = LocalServer(LocalApi(data, concurrent_jobs=2), "127.0.0.1", 0)
    srv.start_background()
    yield srv
    srv.close()


def submit(srv: LocalServer, **fields) -> requests.Response:
    body = {"key": "inputs/clip.mp4", "model": "bicubic", **fields}
    return requests.post(srv.url + "/jobs", json=body, timeout=10)


def wait(srv: LocalServer, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while (status := requests.get(f"{srv.url}/jobs/{job_id}", timeout=10).json())["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    return status


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_local_jobs_cannot_write_over_another_jobs_result(server: LocalServer) -> None:
    data = server.api.data_dir
    first = submit(server).json()
    named = submit(server, output_key="named/result.mp4").json()  # both run at once
    assert wait(server, first["job_id"])["state"] == "succeeded"
    assert wait(server, named["job_id"])["state"] == "succeeded"
    result = data / first["output_key"]
    before = digest(result)
    for requested in (first["output_key"], first["output_key"].removeprefix("outputs/")):
        refused = submit(server, output_key=requested)  # the reported defect: 202, file replaced
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "key_reserved")
    named_before = digest(data / "outputs/named/result.mp4")
    for requested in ("named/result.mp4", "named/result.mkv"):
        refused = submit(server, output_key=requested)
        assert (refused.status_code, refused.json()["error"]["code"]) == (409, "output_exists")
    assert digest(result) == before and digest(data / "outputs/named/result.mp4") == named_before


def test_local_submits_racing_for_one_output_key_make_one_job(server: LocalServer) -> None:
    jobs_before = len(list((server.api.data_dir / ".vsr-api" / "jobs").glob("*.json")))
    by_key: dict[str, requests.Response] = {}

    def race(i: int) -> None:
        by_key[f"race-{i}"] = submit(server, output_key="raced.mp4", idempotency_key=f"race-{i}")

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(a.status_code for a in by_key.values())
    assert codes == [202] + [409] * 7, [a.text for a in by_key.values()]
    key, winner = next((k, a.json()) for k, a in by_key.items() if a.status_code == 202)
    replay = submit(server, output_key="raced.mp4", idempotency_key=key)  # the winner's retry
    assert (replay.status_code, replay.json()["job_id"]) == (200, winner["job_id"])
    assert len(list((server.api.data_dir / ".vsr-api" / "jobs").glob("*.json"))) == 1 + jobs_before
    requests.delete(f"{server.url}/jobs/{winner['job_id']}", timeout=10)
