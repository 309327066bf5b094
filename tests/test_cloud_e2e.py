"""The cloud path end to end without AWS, as the stack declares it.

One moto server (S3, DynamoDB, Batch API) on 127.0.0.1 holds one deployment of the stack per
accelerator (tests/api/moto_world.py: the stack's own job definitions, Lambda environment and
IAM policies); the Lambda handler runs in-process; the Batch emulator (tests/batch_emulator.py)
runs the jobs that were really submitted, as those job definitions say, as worker subprocesses
against moto S3. The runs are module fixtures shared by the tests that read them. Every AWS
call the Lambda and the worker make in them is recorded at the server (tests/aws_calls.py) and
checked against the stack's IAM policies (tests/iam_eval.py), in the last tests.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from stack.compute import stage_resources
from tests import oracle
from tests.api.media import small_video
from tests.api.moto_world import (
    API_URL,
    LAMBDA,
    WORKER,
    EndpointSession,
    FakeContext,
    HandlerAdapter,
    World,
    build_world,
    proxy_event,
    sdk,
)
from tests.aws_calls import AwsCall
from tests.batch_emulator import DEPENDENCY_FAILED, BatchEmulator, python_worker_env
from tests.iam_eval import without_action
from vsr_api.adapters import s3_storage
from vsr_client.contract import ExitCode, Manifest
from vsr_client.devices import device_for_accelerator

CHECKPOINT_FRAMES = 10
REPO = Path(__file__).resolve().parents[1]
# Grants no test run can exercise, each with the reason it stays (anything else unused fails).
KEPT_UNRECORDED = {
    (LAMBDA, "OwnLogs", "logs:CreateLogStream"): "the Lambda runtime writes the function's logs, not its code",
    (LAMBDA, "OwnLogs", "logs:PutLogEvents"): "the Lambda runtime writes the function's logs, not its code",
    (WORKER, "WriteJobFiles", "s3:AbortMultipartUpload"): "s3transfer aborts a failed upload over 16 MiB",
    (WORKER, "WriteResults", "s3:AbortMultipartUpload"): "s3transfer aborts a failed upload over 16 MiB",
}


@dataclass
class Run:
    world: World
    accepted: dict
    emulator: BatchEmulator
    status: dict  # GET /jobs/{id} after the emulator finished

    def attempts(self, stage: str) -> list:
        return [a for a in self.emulator.attempts if a.job.endswith(f"-{stage}")]


@dataclass
class Cloud:
    url: str
    recorder: object
    worlds: dict[str, World] = field(default_factory=dict)
    failed: dict[str, Run] = field(default_factory=dict)

    def world(self, accelerator: str) -> World:
        if accelerator not in self.worlds:
            self.worlds[accelerator] = build_world(EndpointSession(self.url), accelerator, name=f"vsr-{accelerator}")
        return self.worlds[accelerator]

    def calls(self) -> list[AwsCall]:
        return list(self.recorder.calls)

    def emulate(self, world: World, sent: list[dict], faults: dict | None = None) -> BatchEmulator:
        """Batch runs ``sent`` (SubmitJob requests) as ``world``'s job definitions declare."""
        assert [r["jobName"].rsplit("-", 1)[-1] for r in sent] == ["split", "upscale", "merge"]
        image_env = {
            **python_worker_env(),
            "AWS_ENDPOINT_URL": self.url,
            "VSR_CHECKPOINT_FRAMES": str(CHECKPOINT_FRAMES),
        }
        emulator = BatchEmulator(world.session.client("batch"), image_env, world.role_credentials, faults or {})
        emulator.run(sent, world.job_ids)
        return emulator

    def run(self, world: World, body: dict, faults: dict | None = None) -> Run:
        """Submit through the handler, run exactly the submitted jobs, then ask for the status."""
        before = len(world.calls["SubmitJob"])
        accepted = call(world, "POST", "/", body, expect=202)
        emulator = self.emulate(world, world.calls["SubmitJob"][before:], faults)
        return Run(world, accepted, emulator, call(world, "GET", f"/jobs/{accepted['job_id']}", expect=200))


class BatchAfterSubmit(HandlerAdapter):
    """The API in-process, and Batch running whatever a request submitted before it answers."""

    def __init__(self, cloud: Cloud, world: World) -> None:
        super().__init__(world)
        self.cloud = cloud
        self.emulators: list[BatchEmulator] = []

    def send(self, request, **kwargs):  # type: ignore[override]
        before = len(self.world.calls["SubmitJob"])
        response = super().send(request, **kwargs)
        sent = self.world.calls["SubmitJob"][before:]
        if sent:
            self.emulators.append(self.cloud.emulate(self.world, sent))
        return response


def call(world: World, method: str, path: str, body: dict | None = None, expect: int | None = None) -> dict:
    answer = world.handler(proxy_event(method, path, body), FakeContext())
    if expect is not None:
        assert answer["statusCode"] == expect, answer["body"]
    return json.loads(answer["body"])


@pytest.fixture(scope="module")
def cloud(moto) -> Cloud:
    requests.post(f"{moto.url}/moto-api/reset", timeout=10)
    return Cloud(moto.url, moto.recorder)


def job_objects(world: World, job_id: str) -> list[str]:
    prefix = f"{world.settings.work_prefix}{job_id}/"
    pages = world.s3.get_paginator("list_objects_v2").paginate(Bucket=world.names.bucket, Prefix=prefix)
    return sorted(o["Key"][len(prefix) :] for page in pages for o in page.get("Contents", []))


def upload(world: World, src: Path, key: str) -> str:
    world.s3.upload_file(str(src), world.names.bucket, key)
    return key


# --- the runs ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed(cloud: Cloud, make_case, tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, Path, Path]:
    """The seed request on a CPU stack: the SDK uploads to a root-level key (a presigned PUT),
    POST / {"key": "clip.mp4", ...}, Batch runs it, the SDK downloads the result."""
    world = cloud.world("cpu")
    src = make_case("tracks_and_subs")
    client = sdk(world)
    key = client.upload(src, key="clip.mp4")
    run = cloud.run(world, {"key": key, "scale": 2, "segment_time": 1})
    out = client.download(run.accepted["job_id"], tmp_path_factory.mktemp("seed") / "out.mp4")
    return run, src, out


@pytest.fixture(scope="module")
def resumed(cloud: Cloud, make_case, tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, Run, Path, Path, Path]:
    """The same job twice, the second with upscale child 1 reclaimed after two stored parts."""
    world = cloud.world("cpu")
    src = make_case("cfr25")
    key = upload(world, src, "inputs/cfr25.mp4")
    clean = cloud.run(world, {"key": key, "segment_time": 2})
    reclaim = {("upscale", 1): {"VSR_FAULT_EXIT_AFTER_PARTS": "2"}}
    faulty = cloud.run(world, {"key": key, "segment_time": 2}, faults=reclaim)
    folder = tmp_path_factory.mktemp("resumed")
    paths = []
    for run in (clean, faulty):
        paths.append(folder / f"{run.accepted['job_id']}.mp4")
        world.s3.download_file(world.names.bucket, run.accepted["output_key"], str(paths[-1]))
    return clean, faulty, src, paths[0], paths[1]


@pytest.fixture(scope="module")
def debug(cloud: Cloud, make_case) -> Run:
    world = cloud.world("cpu")
    key = upload(world, make_case("no_audio"), "sources/no_audio.mp4")
    return cloud.run(world, {"key": key, "segment_time": 2, "task": "debug"})


def failed_run(cloud: Cloud, accelerator: str, tmp: Path) -> Run:
    """A 64x48, 2 s video on an accelerator stack (two segments, an array job, on inf1)."""
    if accelerator not in cloud.failed:
        world = cloud.world(accelerator)
        key = upload(world, small_video(tmp / f"{accelerator}.mp4"), f"{accelerator}.mp4")
        segment_time = 1 if accelerator == "inf1" else 2
        cloud.failed[accelerator] = cloud.run(world, {"key": key, "segment_time": segment_time})
    return cloud.failed[accelerator]


@pytest.fixture(scope="module")
def api_paths(cloud: Cloud, seed, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The API's other calls: list, cancel, a rejected idempotent submit, a multipart upload
    completed and one aborted (as the SDK does on a failed upload)."""
    world, tmp = cloud.world("cpu"), tmp_path_factory.mktemp("api")
    out: dict = {"listed": call(world, "GET", "/jobs", expect=200)}
    out["missing"] = call(world, "POST", "/", {"key": "gone.mp4", "idempotency_key": "k-1"}, expect=404)
    running = call(world, "POST", "/", {"key": "clip.mp4", "segment_time": 1}, expect=202)
    emulator = BatchEmulator(world.session.client("batch"), {})
    for job_id in world.service.store.get(running["job_id"]).scheduler_ids.values():
        emulator.report(job_id, "RUNNING", None, None)  # moto finishes jobs at once; Batch would not
    out["cancelled"] = call(world, "DELETE", f"/jobs/{running['job_id']}", expect=200)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(s3_storage, "MULTIPART_THRESHOLD", 5 * 1024**2)
        mp.setattr(s3_storage, "MIN_PART_SIZE", 5 * 1024**2)
        big = tmp / "big.mp4"
        big.write_bytes(os.urandom(5 * 1024**2 + 1024))
        out["multipart_key"] = sdk(world).upload(big, key="uploads/big.mp4")
        target = call(world, "POST", "/uploads", {"key": "uploads/abandoned.mp4", "size": big.stat().st_size})
        out["aborted"] = requests.delete(target["abort_url"], timeout=10).status_code
    return out


# --- the CPU stack: frame-exact, resumable, debuggable ------------------------------------------


def test_submitted_jobs_produce_a_frame_exact_output_and_leave_no_intermediates(seed) -> None:
    run, src, out = seed
    assert run.emulator.failures() == []
    assert oracle.video_frame_times(out) == oracle.video_frame_times(src)
    assert [s["codec_type"] for s in oracle.streams(out)] == ["video", "audio", "audio", "subtitle"]
    for index in (1, 2, 3):
        assert oracle.packet_hashes(out, index) == oracle.packet_hashes(src, index)
    left = job_objects(run.world, run.accepted["job_id"])
    assert not [k for k in left if k.startswith(("split/", "upscaled/", "debug/"))], left
    assert "manifest.json" in left and "result.json" in left
    assert run.status["state"] == "succeeded" and run.status.get("download_url"), run.status
    # A browser plays (and seeks) the presigned download only if S3 labels it a video.
    head = run.world.s3.head_object(Bucket=run.world.names.bucket, Key=run.accepted["output_key"])
    assert head["ContentType"] == "video/mp4"


def test_cpu_stack_upscales_with_the_learned_model_on_ncnn(seed) -> None:
    run, _, _ = seed
    upscale = run.attempts("upscale")
    assert len(upscale) == run.accepted["segments"] == 4
    for attempt in upscale:
        assert f"segment {attempt.index}: model realesr-animevideov3 on backend ncnn" in attempt.log


def test_every_stage_runs_with_the_environment_and_credentials_the_stack_declares(seed) -> None:
    run, _, _ = seed
    world = run.world
    vcpus = {stage: str(res.vcpus) for stage, res in stage_resources(world.stack).items()}
    for attempt in run.emulator.attempts:
        stage = attempt.job.rsplit("-", 1)[-1]
        env = attempt.env
        assert env["VSR_DEVICE"] == world.stack.upscale_device == "ncnn"
        assert env["VSR_THREADS"] == vcpus[stage]  # the stage's vCPUs, not this host's cores
        assert env["VSR_BUCKET"] == world.names.bucket and env["AWS_DEFAULT_REGION"] == world.names.region
        assert env["AWS_ACCESS_KEY_ID"] == world.names.key_id(WORKER)  # the job role's
        assert env["AWS_BATCH_JOB_ID"].startswith(world.job_ids[attempt.job])
        assert attempt.unprovided == []  # a CPU job asks for nothing this host lacks
    assert vcpus["upscale"] == "4" and vcpus["split"] == vcpus["merge"] == "1"


def test_killed_upscale_child_resumes_and_the_result_is_identical(resumed) -> None:
    clean, faulty, src, a, b = resumed
    killed = [x for x in faulty.emulator.attempts if x.index == 1 and x.exit_code != 0]
    assert len(killed) == 1 and killed[0].exit_code == 137 and killed[0].status_reason.startswith("Host EC2")
    again = [x for x in faulty.emulator.attempts if x.index == 1 and x.exit_code == 0]
    assert again[0].number == 2  # the definition's retry strategy retried the lost host
    assert "resuming after 2 stored part(s), skipping 20 frame(s)" in again[0].log
    assert oracle.packet_hashes(b, 0) == oracle.packet_hashes(a, 0)  # the video stream, byte for byte
    assert oracle.video_frame_times(b) == oracle.video_frame_times(src)
    assert clean.status["state"] == faulty.status["state"] == "succeeded"


def test_debug_task_keeps_every_documented_intermediate(debug) -> None:
    left = set(job_objects(debug.world, debug.accepted["job_id"]))
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
    for i in range(debug.accepted["segments"]):
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


# --- accelerator stacks on a host without the accelerator ---------------------------------------

MISSING = {"inf1": ["/dev/neuron0"], "inf2": ["/dev/neuron0"], "gpu": ["GPU x1"]}


@pytest.mark.parametrize("accelerator", ["inf1", "inf2", "gpu"])
def test_accelerator_stacks_select_their_device_and_never_fall_back_to_the_cpu(
    cloud: Cloud, accelerator: str, tmp_path: Path
) -> None:
    run = failed_run(cloud, accelerator, tmp_path)
    device = device_for_accelerator(accelerator)
    manifest = Manifest.model_validate_json(
        run.world.s3.get_object(Bucket=run.world.names.bucket, Key=f"jobs/{run.accepted['job_id']}/manifest.json")[
            "Body"
        ].read()
    )
    assert manifest.device == device  # the Lambda's environment, from the stack
    assert [a.exit_code for a in run.attempts("split")] == [0]
    upscale = run.attempts("upscale")
    assert len(upscale) == run.accepted["segments"] == (2 if accelerator == "inf1" else 1)
    for attempt in upscale:
        assert attempt.env["VSR_DEVICE"] == device  # the job definition's environment
        assert attempt.unprovided == MISSING[accelerator]  # declared, and not faked here
        assert attempt.exit_code == ExitCode.UNAVAILABLE and attempt.number == 1  # not retried
        errors = [line for line in attempt.log.splitlines() if line.startswith("vsr-worker: error")]
        assert len(errors) == 1 and errors[0].startswith(
            f"vsr-worker: error [device_unavailable]: device '{device}' is not available on this host: "
        ), attempt.log[-2000:]
        assert "on backend" not in attempt.log  # no model ever ran, on the CPU or anywhere
    assert run.attempts("merge") == [] and run.emulator.status[f"vsr-{run.accepted['job_id']}-merge"] == "FAILED"
    status = run.status
    assert status["state"] == "failed" and status["download_url"] is None
    reason = status["failure_reason"]
    child = "child 0: " if accelerator == "inf1" else ""
    assert reason.startswith(f"upscale: {child}[device_unavailable] device '{device}' is not available"), reason
    for local in (tempfile.gettempdir(), str(REPO), os.path.expanduser("~")):
        assert local not in reason
    assert status["progress"]["merge"]["reason"] is None or DEPENDENCY_FAILED in status["progress"]["merge"]["reason"]


# --- scripts/smoke_deploy.py against this world ------------------------------------------------


def smoke_script():
    """scripts/smoke_deploy.py as a module (scripts/ is no package)."""
    if "smoke_deploy" not in sys.modules:
        spec = importlib.util.spec_from_file_location("smoke_deploy", REPO / "scripts" / "smoke_deploy.py")
        sys.modules["smoke_deploy"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["smoke_deploy"])
    return sys.modules["smoke_deploy"]


@pytest.fixture(scope="module")
def smoke(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, BatchAfterSubmit]:
    """The deploy smoke test, run as after `pulumi up`, with the stack's outputs as flags."""
    world = cloud.world("cpu")
    adapter = BatchAfterSubmit(cloud, world)
    session = requests.Session()
    session.mount(API_URL, adapter)
    work = tmp_path_factory.mktemp("smoke")
    argv = ["--api-url", API_URL, "--api-key", "k", "--bucket", world.names.bucket, "--work-dir", str(work)]
    argv += ["--size", "64x48", "--seconds", "2", "--segment-time", "1", "--interval", "0.01", "--timeout", "60"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = smoke_script().main(argv, session=session)
    return code, printed.getvalue(), adapter


def test_smoke_deploy_passes_on_a_working_stack(smoke) -> None:
    code, printed, adapter = smoke
    assert code == 0, printed
    rows = {line.split("  ")[0]: line for line in printed.splitlines() if "  PASS  " in line}
    for check in ("upload (POST /uploads, presigned PUT)", "submit (POST /)", "job", "download (presigned GET)"):
        assert check in rows, printed
    assert rows["frame count"].endswith("50 of 50") and rows["frame timestamps"].endswith("all equal"), printed
    assert rows["size"].endswith("128x96 (want 128x96)") and printed.rstrip().endswith("PASS")
    assert [a.exit_code for a in adapter.emulators[0].attempts] == [0, 0, 0, 0]  # split, 2 upscale, merge


def test_smoke_deploy_reports_a_mismatch_and_a_missing_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = smoke_script()
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    from make_sample_video import make_sample

    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    make_sample(str(a), 64, 48, 1.0, 25)
    make_sample(str(b), 128, 96, 1.0, 24)  # one frame short, other times, the size of a x2 result
    checks = {c.name: c for c in script.compare(a, b, 2)}
    assert (checks["frame count"].ok, checks["frame count"].detail) == (False, "24 of 25")
    assert not checks["frame timestamps"].ok and checks["size"].ok and checks["audio streams"].ok
    assert "  FAIL  " in script.table(list(checks.values()))
    monkeypatch.delenv("VSR_API_URL", raising=False)
    monkeypatch.setattr(script.shutil, "which", lambda name: "/usr/bin/ffprobe" if name == "ffprobe" else None)
    assert script.main(["--work-dir", str(tmp_path)]) == script.EXIT_SETUP  # no outputs and no Pulumi CLI


# --- IAM: what the code did, against what the stack grants --------------------------------------


@pytest.fixture(scope="module")
def all_calls(cloud: Cloud, seed, resumed, debug, api_paths, smoke, tmp_path_factory) -> list[AwsCall]:
    tmp = tmp_path_factory.mktemp("accelerators")
    for accelerator in ("inf1", "inf2", "gpu"):
        failed_run(cloud, accelerator, tmp)
    return cloud.calls()


def test_the_api_paths_did_what_the_recording_relies_on(api_paths) -> None:
    assert api_paths["missing"]["error"]["code"] == "input_not_found"
    assert api_paths["cancelled"]["state"] == "cancelled"
    assert api_paths["multipart_key"] == "uploads/big.mp4" and api_paths["aborted"] == 204
    assert api_paths["listed"]["jobs"]


def test_every_call_of_the_lambda_and_the_worker_is_allowed_by_the_stacks_iam(cloud: Cloud, all_calls) -> None:
    seen = {(world.principal(c), c.operation) for world in cloud.worlds.values() for c in all_calls}
    lambda_ops = (
        *("PutObject", "HeadObject", "GetObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"),
        *("AbortMultipartUpload", "ListObjectsV2", "SubmitJob", "DescribeJobs", "ListJobs", "TerminateJob"),
        *("GetItem", "PutItem", "DeleteItem", "Scan"),
    )
    worker_ops = ("GetObject", "HeadObject", "PutObject", "ListObjectsV2", "DeleteObjects")
    must = {(LAMBDA, op) for op in lambda_ops} | {(WORKER, op) for op in worker_ops}
    assert must <= seen, sorted(must - seen)
    assert {op for who, op in seen if who and op.startswith(("unknown", "ambiguous"))} == set()
    for world in cloud.worlds.values():
        assert world.iam_problems(all_calls) == []


def test_every_grant_is_used_by_a_recorded_call_or_kept_for_a_stated_reason(cloud: Cloud, all_calls) -> None:
    unused: set[tuple[str, str, str]] | None = None
    for world in cloud.worlds.values():
        grants = world.unused_grants(all_calls)
        here = {(who, sid, action) for who, unused_here in grants.items() for _, sid, action in unused_here}
        unused = here if unused is None else unused & here
    assert unused == set(KEPT_UNRECORDED)


@pytest.mark.parametrize(
    ("principal", "action", "operation"),
    [
        (LAMBDA, "batch:TagResource", "SubmitJob"),  # tag-on-create
        (LAMBDA, "batch:TerminateJob", "TerminateJob"),
        (LAMBDA, "dynamodb:DeleteItem", "DeleteItem"),
        (LAMBDA, "s3:AbortMultipartUpload", "AbortMultipartUpload"),
        (WORKER, "s3:DeleteObject", "DeleteObjects"),
        (WORKER, "s3:ListBucket", "ListObjectsV2"),
    ],
)
def test_the_check_fails_when_a_needed_action_is_removed(
    cloud: Cloud, all_calls, principal: str, action: str, operation: str
) -> None:
    world = cloud.world("cpu")
    identity, _ = world.policies()
    mutated = {**identity, principal: {n: without_action(d, action) for n, d in identity[principal].items()}}
    problems = world.iam_problems(all_calls, identity=mutated)
    assert problems and all(re.match(rf"{principal} {operation} -> {action} on ", p) for p in problems), problems


def test_the_lambda_may_stop_only_jobs_tagged_with_its_stack(cloud: Cloud, all_calls) -> None:
    world = cloud.world("cpu")
    terminated = [c for c in all_calls if world.principal(c) == LAMBDA and c.operation == "TerminateJob"]
    assert len(terminated) == 3
    retagged = [AwsCall(**{**c.__dict__, "params": {**c.params}}) for c in all_calls if c.operation == "SubmitJob"]
    for c in retagged:  # the same jobs, had another stack submitted them
        c.params["tags"] = {**c.params.get("tags", {}), "vsr:stack": "someone-else"}
    problems = world.iam_problems(retagged + terminated)
    assert sum("TerminateJob -> batch:TerminateJob" in p for p in problems) == 3
