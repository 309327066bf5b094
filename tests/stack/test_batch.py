"""AWS Batch as registered: queues on their environments (spot falling back to on-demand; split
and merge on a CPU pair), AMIs per accelerator, RUNNABLE time limits, job definitions that retry
lost hosts and storage failures and stop on bad input, all valid requests for botocore's Batch
model."""

from __future__ import annotations

import json
from typing import Any

import botocore.session
import pytest
from botocore.model import Shape
from botocore.validate import ParamValidator

from stack.compute import job_definition_request, runnable_time_limits
from stack.settings import ACCELERATOR_PROFILES, Accelerator
from tests.batch_rules import batch_decides
from tests.stack.conftest import Program, settings_of
from vsr_api.adapters.batch_scheduler import submit_job_params
from vsr_api.job_record import JobRecord
from vsr_api.settings import ApiSettings
from vsr_client.contract import BAD_INPUT_EXIT_CODES, ExitCode
from vsr_client.jobgraph import build_job_graph

BATCH = botocore.session.get_session().get_service_model("batch")
CE = "aws:batch/computeEnvironment:ComputeEnvironment"
JQ = "aws:batch/jobQueue:JobQueue"
JD = "aws:batch/jobDefinition:JobDefinition"
STAGES = ("split", "upscale", "merge")
NEURON_SSM = "/aws/service/ecs/optimized-ami/amazon-linux-2023/neuron/recommended/image_id"
# The RUNNABLE reasons AWS Batch can act on, as its user guide lists them ("Automatic
# remediation with jobStateTimeLimitActions"); CAPACITY is the one that may resolve by itself.
DOCUMENTED_TIME_LIMIT_REASONS = {
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
    "MISCONFIGURATION:EC2_INSTANCE_CONFIGURATION_UNSUPPORTED",
}
# queue -> the compute environments it tries, in order.
QUEUE_ORDER = {
    "spot": ["spot", "on-demand"],
    "on-demand": ["on-demand"],
    "cpu-spot": ["cpu-spot", "cpu-on-demand"],
    "cpu-on-demand": ["cpu-on-demand"],
}


def _coerce(shape: Shape, value: Any) -> Any:
    """Pulumi hands numbers over as floats; the API's integers are ints."""
    if shape.type_name == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    if shape.type_name == "structure" and isinstance(value, dict):
        return {k: _coerce(shape.members[k], v) if k in shape.members else v for k, v in value.items()}
    if shape.type_name == "list" and isinstance(value, list):
        return [_coerce(shape.member, v) for v in value]
    if shape.type_name == "map" and isinstance(value, dict):
        return {k: _coerce(shape.value, v) for k, v in value.items()}
    return value


def _enum_errors(shape: Shape, value: Any, path: str = "") -> list[str]:
    """ParamValidator checks names and types, not enum values: walk the shape for those."""
    errors = []
    if shape.type_name == "string" and shape.enum and value not in shape.enum:
        errors.append(f"{path}: {value!r} not in {shape.enum}")
    elif shape.type_name == "structure" and isinstance(value, dict):
        for k, v in value.items():
            if k in shape.members:
                errors += _enum_errors(shape.members[k], v, f"{path}.{k}")
    elif shape.type_name == "list" and isinstance(value, list):
        for i, v in enumerate(value):
            errors += _enum_errors(shape.member, v, f"{path}[{i}]")
    return errors


def _validate(operation: str, request: dict[str, Any]) -> dict[str, Any]:
    shape = BATCH.operation_model(operation).input_shape
    request = _coerce(shape, request)
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()
    assert not _enum_errors(shape, request), _enum_errors(shape, request)
    return request


def _register_job_definition(i: dict[str, Any]) -> dict[str, Any]:
    rs = i["retryStrategy"]
    return {
        "jobDefinitionName": i["name"],
        "type": i["type"],
        "parameters": i["parameters"],
        "containerProperties": json.loads(i["containerProperties"]),
        "retryStrategy": {"attempts": rs["attempts"], "evaluateOnExit": rs["evaluateOnExits"]},
        "timeout": {"attemptDurationSeconds": i["timeout"]["attemptDurationSeconds"]},
        "platformCapabilities": i["platformCapabilities"],
        "propagateTags": i["propagateTags"],
        "tags": i["tags"],
    }


def _create_compute_environment(i: dict[str, Any]) -> dict[str, Any]:
    names = {"maxVcpus": "maxvCpus", "minVcpus": "minvCpus", "ec2Configurations": "ec2Configuration"}
    resources = {names.get(k, k): v for k, v in i["computeResources"].items()}
    name = i.get("name") or i["namePrefix"] + "a1b2c3"  # Pulumi completes a prefix with a random suffix
    return {"computeEnvironmentName": name, "type": i["type"], "state": i["state"], "computeResources": resources}


def _create_job_queue(i: dict[str, Any]) -> dict[str, Any]:
    return {
        "jobQueueName": i["name"],
        "state": i["state"],
        "priority": i["priority"],
        "computeEnvironmentOrder": i["computeEnvironmentOrders"],
        "jobStateTimeLimitActions": i["jobStateTimeLimitActions"],
    }


def _update_job_queue(i: dict[str, Any]) -> dict[str, Any]:
    """What Pulumi sends when the queue's inputs change in place (a new time limit, say)."""
    request = _create_job_queue(i)
    request["jobQueue"] = request.pop("jobQueueName")
    return request


def _kind(resource_name: str, stack: str) -> str:
    return resource_name.removeprefix(f"vsr-{stack}-")


def _environments(p: Program) -> dict[str, dict[str, Any]]:
    return {_kind(ce["name"], _stack(p)): ce for ce in p.of_type(CE)}


def _stack(p: Program) -> str:
    return p.one("vsr:service:Service")["name"].removeprefix("vsr-")


def _container(p: Program, stage: str) -> dict[str, Any]:
    name = next(r["name"] for r in p.of_type(JD) if r["name"].endswith(f"-{stage}"))
    return json.loads(p.inputs(JD, name)["containerProperties"])


def test_job_definitions_are_valid_register_requests(program: Program) -> None:
    jds = program.of_type(JD)
    assert len(jds) == 3
    for jd in jds:
        _validate("RegisterJobDefinition", _register_job_definition(jd["inputs"]))


@pytest.mark.parametrize("variant", ["prod", "inf2", "gpu", "dev"])
def test_job_definitions_are_the_requests_the_emulated_batch_runs(programs: dict[str, Program], variant: str) -> None:
    """The stack registers exactly ``job_definition_request`` (what tests/test_cloud_e2e.py
    registers in moto and runs), given this run's settings and resolved names."""
    p = programs[variant]
    settings = settings_of(variant, p)
    shape = BATCH.operation_model("RegisterJobDefinition").input_shape
    for jd in p.of_type(JD):
        stage = jd["name"].rsplit("-", 1)[-1]
        registered = _coerce(shape, _register_job_definition(jd["inputs"]))
        container = registered["containerProperties"]
        expected = job_definition_request(
            settings,
            stage,
            image=container["image"],
            job_role_arn=container["jobRoleArn"],
            log_group=p.exports["batch_log_group"],
            region="us-east-1",
            bucket=p.exports["bucket"],
        )
        assert {k: v for k, v in registered.items() if k not in ("jobDefinitionName", "tags")} == expected
        assert container["image"] == p.exports["worker_image"]


def test_the_validator_catches_a_wrong_field_name_and_enum(prod: Program) -> None:
    request = _register_job_definition(prod.of_type(JD)[0]["inputs"])
    request["containerProperties"]["logConfig"] = request["containerProperties"].pop("logConfiguration")
    with pytest.raises(AssertionError, match="logConfig"):
        _validate("RegisterJobDefinition", request)
    request = _register_job_definition(prod.of_type(JD)[0]["inputs"])
    request["containerProperties"]["resourceRequirements"][0]["type"] = "CPU"
    with pytest.raises(AssertionError, match="CPU"):
        _validate("RegisterJobDefinition", request)


def test_compute_environments_and_queues_are_valid_create_and_update_requests(program: Program) -> None:
    for ce in program.of_type(CE):
        _validate("CreateComputeEnvironment", _create_compute_environment(ce["inputs"]))
    for jq in program.of_type(JQ):
        _validate("CreateJobQueue", _create_job_queue(jq["inputs"]))
        _validate("UpdateJobQueue", _update_job_queue(jq["inputs"]))


def test_spot_queues_fall_back_to_on_demand_and_cpu_stages_have_their_own(program: Program) -> None:
    stack = _stack(program)
    envs = _environments(program)
    by_arn = {ce["outputs"]["arn"]: kind for kind, ce in envs.items()}
    queues = {_kind(jq["name"], stack): jq["inputs"] for jq in program.of_type(JQ)}
    assert set(queues) == set(QUEUE_ORDER) and set(envs) == {e for order in QUEUE_ORDER.values() for e in order}
    for kind, queue in queues.items():
        orders = sorted(queue["computeEnvironmentOrders"], key=lambda o: o["order"])
        assert [by_arn[o["computeEnvironment"]] for o in orders] == QUEUE_ORDER[kind], kind
        assert [o["order"] for o in orders] == list(range(1, len(orders) + 1))
        assert queue["state"] == "ENABLED" and queue["name"] == f"vsr-{stack}-{kind}"
    # On the shared on-demand environments, deadline jobs come first.
    assert queues["on-demand"]["priority"] > queues["spot"]["priority"]
    assert queues["cpu-on-demand"]["priority"] > queues["cpu-spot"]["priority"]
    for kind, ce in envs.items():
        r = ce["inputs"]["computeResources"]
        assert r["type"] == ("SPOT" if kind.endswith("spot") else "EC2"), kind
        assert ce["inputs"]["namePrefix"] == f"{ce['name']}-"
        if r["type"] == "SPOT":
            assert r["allocationStrategy"] in ("SPOT_PRICE_CAPACITY_OPTIMIZED", "SPOT_CAPACITY_OPTIMIZED")


def test_cpu_environments_run_small_cpu_instances_on_the_plain_al2023_ami(program: Program) -> None:
    envs = _environments(program)
    for kind in ("cpu-spot", "cpu-on-demand"):
        r = envs[kind]["inputs"]["computeResources"]
        assert r["instanceTypes"] == ["c6i.large", "c7i.large", "m6i.large", "c6i.xlarge"]
        assert not [t for t in r["instanceTypes"] if t.startswith(("inf", "trn", "g", "p"))]
        assert r["ec2Configurations"] == [{"imageType": "ECS_AL2023"}]  # Batch's default AL2023 AMI
        assert r["minVcpus"] == 0


@pytest.mark.parametrize(
    ("variant", "accelerator", "instance_types"),
    [
        ("prod", "inf1", ["inf1.xlarge"]),
        ("inf2", "inf2", ["inf2.xlarge"]),
        ("gpu", "gpu", ["g5.xlarge", "g6.xlarge"]),
        ("dev", "cpu", ["c6i.xlarge"]),
    ],
)
def test_upscale_environments_use_the_accelerators_instances_and_ami(
    programs: dict[str, Program], variant: str, accelerator: str, instance_types: list[str]
) -> None:
    p = programs[variant]
    ssm = [c for c in p.calls if c["token"] == "aws:ssm/getParameter:getParameter"]
    envs = _environments(p)
    for kind in ("spot", "on-demand"):
        r = envs[kind]["inputs"]["computeResources"]
        assert r["instanceTypes"] == instance_types
        (ec2,) = r["ec2Configurations"]
        assert ec2["imageType"] == ACCELERATOR_PROFILES[Accelerator(accelerator)].image_type
        assert not ec2["imageType"].startswith("ECS_AL2_") and ec2["imageType"] != "ECS_AL2"
        if accelerator in ("inf1", "inf2"):
            assert ec2["imageIdOverride"] == "ami-0abcdef1234567890"  # the mocked SSM parameter's value
        else:
            assert "imageIdOverride" not in ec2
    for ce in p.of_type(CE):
        r = ce["inputs"]["computeResources"]
        assert r["launchTemplate"]["launchTemplateId"]
        assert r["instanceRole"].startswith("arn:aws:iam:") and "instanceprofile" in r["instanceRole"]
    if accelerator in ("inf1", "inf2"):
        assert {c["args"]["name"] for c in ssm} == {NEURON_SSM}
    else:
        assert ssm == []


def test_queues_cancel_jobs_stuck_runnable_for_capacity_and_misconfiguration(program: Program) -> None:
    for jq in program.of_type(JQ):
        actions = jq["inputs"]["jobStateTimeLimitActions"]
        reasons = {a["reason"] for a in actions}
        assert reasons <= DOCUMENTED_TIME_LIMIT_REASONS, reasons - DOCUMENTED_TIME_LIMIT_REASONS
        assert "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY" in reasons
        assert {
            "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
            "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
        } <= reasons
        for a in actions:
            assert (a["action"], a["state"]) == ("CANCEL", "RUNNABLE")
            assert 600 <= a["maxTimeSeconds"] <= 86400  # the API's documented range
        capacity = next(a for a in actions if a["reason"].startswith("CAPACITY:"))
        assert capacity["maxTimeSeconds"] == 7200  # the default, and Pulumi.prod.yaml's value


def test_capacity_wait_is_configurable_and_can_be_turned_off() -> None:
    waiting = runnable_time_limits(14400, None)
    assert {a["reason"] for a in waiting} == {
        "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
        "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
    }
    limits = {a["reason"]: a["maxTimeSeconds"] for a in runnable_time_limits(14400, 900)}
    assert limits["CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"] == 900
    _validate("CreateJobQueue", {"jobQueueName": "q", "priority": 1, "jobStateTimeLimitActions": waiting})


def test_a_pinned_ami_skips_the_ssm_lookup(programs: dict[str, Program]) -> None:
    p = programs["iam"]
    assert not [c for c in p.calls if c["token"] == "aws:ssm/getParameter:getParameter"]
    envs = _environments(p)
    for kind in ("spot", "on-demand"):  # the pin is for the upscale hosts; CPU hosts keep Batch's AMI
        ec2 = envs[kind]["inputs"]["computeResources"]["ec2Configurations"][0]
        assert ec2["imageIdOverride"] == "ami-0fedcba9876543210"


def test_every_stage_runs_the_worker_with_the_manifest_parameter(program: Program) -> None:
    for stage in STAGES:
        c = _container(program, stage)
        assert c["command"] == ["vsr-worker", stage, "--manifest", "Ref::manifest"]
        assert c["jobRoleArn"].endswith(
            ":role/" + program.one("aws:iam/role:Role", c["jobRoleArn"].rsplit("/", 1)[-1])["name"]
        )
        log = c["logConfiguration"]
        assert log["logDriver"] == "awslogs" and log["options"]["awslogs-stream-prefix"] == stage
        assert log["options"]["awslogs-group"] == program.exports["batch_log_group"]
        assert c["privileged"] is False


def test_retries_host_loss_and_storage_and_stops_on_bad_input(program: Program) -> None:
    for jd in program.of_type(JD):
        rs = jd["inputs"]["retryStrategy"]
        assert rs["attempts"] >= 2
        rules = rs["evaluateOnExits"]
        assert len(rules) <= 5  # Batch's limit
        assert rules[-1] == {"action": "EXIT", "onReason": "*"}
        assert batch_decides(rules, None, "Host EC2 (instance i-0123456789abcdef0) terminated.") == "RETRY"
        for code in (*BAD_INPUT_EXIT_CODES, ExitCode.UNAVAILABLE):  # bad input, a host without the device
            assert batch_decides(rules, int(code)) == "EXIT", code
        assert batch_decides(rules, int(ExitCode.TEMPFAIL)) == "RETRY"  # storage after its retries
        # Internal failures exit; the worker itself asks for their one retry (exit 75, first attempt).
        for code in (ExitCode.FAILURE, ExitCode.SOFTWARE, ExitCode.CANTCREAT, ExitCode.IOERR, 137, 139):
            assert batch_decides(rules, int(code)) == "EXIT", code
        assert jd["inputs"]["timeout"]["attemptDurationSeconds"] >= 60
        assert jd["inputs"]["platformCapabilities"] == ["EC2"]


@pytest.mark.parametrize(("variant", "devices", "gpus"), [("prod", 1, 0), ("inf2", 1, 0), ("gpu", 0, 1), ("dev", 0, 0)])
def test_upscale_gets_the_accelerator_devices(
    programs: dict[str, Program], variant: str, devices: int, gpus: int
) -> None:
    p = programs[variant]
    up = _container(p, "upscale")
    mapped = up["linuxParameters"].get("devices", [])
    assert [d["hostPath"] for d in mapped] == [f"/dev/neuron{i}" for i in range(devices)]
    assert all(d["containerPath"] == d["hostPath"] and set(d["permissions"]) == {"READ", "WRITE"} for d in mapped)
    req = {r["type"]: r["value"] for r in up["resourceRequirements"]}
    assert req.get("GPU") == (str(gpus) if gpus else None)
    assert int(req["VCPU"]) >= 1 and int(req["MEMORY"]) >= 512
    for stage in ("split", "merge"):
        c = _container(p, stage)
        assert "devices" not in c["linuxParameters"]
        assert "GPU" not in {r["type"] for r in c["resourceRequirements"]}


@pytest.mark.parametrize(
    ("variant", "device"), [("prod", "neuron"), ("inf2", "neuronx"), ("gpu", "cuda"), ("dev", "ncnn")]
)
def test_upscale_runs_the_accelerators_device_and_the_lambda_records_the_same(
    programs: dict[str, Program], variant: str, device: str
) -> None:
    """inf1 -> neuron, inf2 -> neuronx, gpu -> cuda, cpu -> ncnn: in the upscale job definition
    (what the worker reads) and in the Lambda's environment (what every manifest records)."""
    p = programs[variant]
    env = {e["name"]: e["value"] for e in _container(p, "upscale")["environment"]}
    assert env["VSR_DEVICE"] == device
    assert p.inputs("aws:lambda/function:Function")["environment"]["variables"]["VSR_DEVICE"] == device


@pytest.mark.parametrize("env", ["spot", "onDemand"])
def test_the_lambda_submits_valid_requests_split_and_merge_to_the_cpu_queues(program: Program, env: str) -> None:
    """The API's own SubmitJob requests (submit_job_params), from the Lambda environment the
    stack sets: valid for botocore, each stage on its queue, the command the graph expects."""
    variables = program.inputs("aws:lambda/function:Function")["environment"]["variables"]
    settings = ApiSettings(**{k.removeprefix("VSR_").lower(): v for k, v in variables.items()}).check_cloud()
    env_kinds = {ce["outputs"]["arn"]: kind for kind, ce in _environments(program).items()}
    queue_envs = {
        jq["outputs"]["arn"]: {env_kinds[o["computeEnvironment"]] for o in jq["inputs"]["computeEnvironmentOrders"]}
        for jq in program.of_type(JQ)
    }
    record = JobRecord.model_construct(job_id="job-1", env=env)
    manifest = f"s3://{settings.bucket}/{settings.work_prefix}job-1/manifest.json"
    parent = None
    for spec in build_job_graph(manifest, segments=4):
        request = submit_job_params(spec, record, settings, manifest, parent)
        _validate("SubmitJob", request)
        parent = f"id-{spec.name}"
        envs = queue_envs[request["jobQueue"]]
        cpu = {e for e in envs if e.startswith("cpu-")}
        assert (envs == cpu) is (spec.name in ("split", "merge")), (spec.name, envs)
        assert ("spot" in {e.removeprefix("cpu-") for e in envs}) is (env == "spot"), (spec.name, envs)
        assert request["parameters"] == {"manifest": manifest, "job_id": "job-1"}
        # The definition's command is the job graph's, with the manifest as a Batch parameter.
        command = _container(program, spec.name)["command"]
        assert [request["parameters"]["manifest"] if c == "Ref::manifest" else c for c in command] == spec.command
