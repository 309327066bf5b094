"""AWS Batch as registered: queues on their environments, AMIs per accelerator, job definitions
that retry lost hosts and storage failures and stop on bad input, all valid requests for
botocore's Batch model."""

from __future__ import annotations

import json
from typing import Any

import botocore.session
import pytest
from botocore.model import Shape
from botocore.validate import ParamValidator

from stack.settings import ACCELERATOR_PROFILES, Accelerator
from tests.batch_rules import batch_decides
from tests.stack.conftest import Program
from vsr_client.contract import BAD_INPUT_EXIT_CODES, ExitCode
from vsr_client.jobgraph import build_job_graph

BATCH = botocore.session.get_session().get_service_model("batch")
CE = "aws:batch/computeEnvironment:ComputeEnvironment"
JQ = "aws:batch/jobQueue:JobQueue"
JD = "aws:batch/jobDefinition:JobDefinition"
STAGES = ("split", "upscale", "merge")
NEURON_SSM = "/aws/service/ecs/optimized-ami/amazon-linux-2023/inf/recommended/image_id"


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


def _container(p: Program, stage: str) -> dict[str, Any]:
    name = next(r["name"] for r in p.of_type(JD) if r["name"].endswith(f"-{stage}"))
    return json.loads(p.inputs(JD, name)["containerProperties"])


def test_job_definitions_are_valid_register_requests(program: Program) -> None:
    jds = program.of_type(JD)
    assert len(jds) == 3
    for jd in jds:
        _validate("RegisterJobDefinition", _register_job_definition(jd["inputs"]))


def test_the_validator_catches_a_wrong_field_name_and_enum(prod: Program) -> None:
    request = _register_job_definition(prod.of_type(JD)[0]["inputs"])
    request["containerProperties"]["logConfig"] = request["containerProperties"].pop("logConfiguration")
    with pytest.raises(AssertionError, match="logConfig"):
        _validate("RegisterJobDefinition", request)
    request = _register_job_definition(prod.of_type(JD)[0]["inputs"])
    request["containerProperties"]["resourceRequirements"][0]["type"] = "CPU"
    with pytest.raises(AssertionError, match="CPU"):
        _validate("RegisterJobDefinition", request)


def test_compute_environments_and_queues_are_valid_create_requests(program: Program) -> None:
    for ce in program.of_type(CE):
        _validate("CreateComputeEnvironment", _create_compute_environment(ce["inputs"]))
    for jq in program.of_type(JQ):
        _validate("CreateJobQueue", _create_job_queue(jq["inputs"]))


def test_each_queue_runs_on_its_own_compute_environment(program: Program) -> None:
    envs = {ce["outputs"]["arn"]: ce for ce in program.of_type(CE)}
    queues = {jq["name"]: jq["inputs"] for jq in program.of_type(JQ)}
    assert len(envs) == len(queues) == 2
    for queue_name, queue in queues.items():
        kind = "spot" if queue_name.endswith("-spot") else "on-demand"
        assert queue_name.endswith(f"-{kind}") and queue["name"] == queue_name
        (order,) = queue["computeEnvironmentOrders"]
        env = envs[order["computeEnvironment"]]  # the queue references that environment's ARN
        assert env["name"].endswith(f"-{kind}") and env["inputs"]["namePrefix"] == f"{env['name']}-"
        assert env["inputs"]["computeResources"]["type"] == ("SPOT" if kind == "spot" else "EC2")
        assert queue["state"] == "ENABLED"
    spot = next(e for e in envs.values() if e["inputs"]["computeResources"]["type"] == "SPOT")
    assert spot["inputs"]["computeResources"]["allocationStrategy"] in (
        "SPOT_PRICE_CAPACITY_OPTIMIZED",
        "SPOT_CAPACITY_OPTIMIZED",
    )


@pytest.mark.parametrize(
    ("variant", "accelerator", "instance_types"),
    [
        ("prod", "inf1", ["inf1.xlarge"]),
        ("inf2", "inf2", ["inf2.xlarge"]),
        ("gpu", "gpu", ["g5.xlarge", "g6.xlarge"]),
        ("dev", "cpu", ["c6i.xlarge"]),
    ],
)
def test_environments_use_the_accelerators_instances_and_ami(
    programs: dict[str, Program], variant: str, accelerator: str, instance_types: list[str]
) -> None:
    p = programs[variant]
    ssm = [c for c in p.calls if c["token"] == "aws:ssm/getParameter:getParameter"]
    for ce in p.of_type(CE):
        r = ce["inputs"]["computeResources"]
        assert r["instanceTypes"] == instance_types
        (ec2,) = r["ec2Configurations"]
        assert ec2["imageType"] == ACCELERATOR_PROFILES[Accelerator(accelerator)].image_type
        assert not ec2["imageType"].startswith("ECS_AL2_") and ec2["imageType"] != "ECS_AL2"
        if accelerator in ("inf1", "inf2"):
            assert ec2["imageIdOverride"] == "ami-0abcdef1234567890"  # the mocked SSM parameter's value
        else:
            assert "imageIdOverride" not in ec2
        assert r["launchTemplate"]["launchTemplateId"]
        assert r["instanceRole"].startswith("arn:aws:iam:") and "instanceprofile" in r["instanceRole"]
    if accelerator in ("inf1", "inf2"):
        assert {c["args"]["name"] for c in ssm} == {NEURON_SSM}
    else:
        assert ssm == []


def test_a_pinned_ami_skips_the_ssm_lookup(programs: dict[str, Program]) -> None:
    p = programs["iam"]
    assert not [c for c in p.calls if c["token"] == "aws:ssm/getParameter:getParameter"]
    for ce in p.of_type(CE):
        assert ce["inputs"]["computeResources"]["ec2Configurations"][0]["imageIdOverride"] == "ami-0fedcba9876543210"


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


def test_the_lambdas_names_make_valid_submit_job_requests(prod: Program) -> None:
    """What the API submits (jobgraph stages on the queues and definitions the stack hands it)."""
    env = prod.inputs("aws:lambda/function:Function")["environment"]["variables"]
    manifest = f"s3://{env['VSR_BUCKET']}/{env['VSR_WORK_PREFIX']}job-1/manifest.json"
    ids: dict[str, str] = {}
    for spec in build_job_graph(manifest, segments=4):
        request = {
            "jobName": f"vsr-job-1-{spec.name}",
            "jobQueue": env["VSR_QUEUE_SPOT"],
            "jobDefinition": env[f"VSR_JOB_DEFINITION_{spec.name.upper()}"],
            "parameters": {"manifest": manifest},
            "dependsOn": [{"jobId": ids[d]} for d in spec.depends_on],
        }
        if spec.array_size:
            request["arrayProperties"] = {"size": spec.array_size}
        _validate("SubmitJob", request)
        ids[spec.name] = f"id-{spec.name}"
        # The definition's command is the job graph's, with the manifest as a Batch parameter.
        command = _container(prod, spec.name)["command"]
        assert [request["parameters"]["manifest"] if c == "Ref::manifest" else c for c in command] == spec.command
