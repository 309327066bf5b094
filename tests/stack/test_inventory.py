"""The program registers every resource the service needs, composed under one component."""

from __future__ import annotations

import json

from tests.stack.conftest import Program

REQUIRED = {
    "aws:s3/bucket:Bucket": 1,
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": 1,
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": 1,
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": 1,
    "aws:s3/bucketPolicy:BucketPolicy": 1,
    "aws:ecr/repository:Repository": 1,
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": 1,
    "docker-build:index:Image": 1,
    "aws:ec2/vpc:Vpc": 1,
    "aws:ec2/subnet:Subnet": 2,
    "aws:ec2/securityGroup:SecurityGroup": 1,
    "aws:ec2/launchTemplate:LaunchTemplate": 1,
    "aws:batch/computeEnvironment:ComputeEnvironment": 4,
    "aws:batch/jobQueue:JobQueue": 4,
    "aws:batch/jobDefinition:JobDefinition": 3,
    "aws:dynamodb/table:Table": 1,
    "aws:lambda/function:Function": 1,
    "aws:lambda/layerVersion:LayerVersion": 1,
    "aws:lambda/permission:Permission": 1,
    "aws:apigateway/restApi:RestApi": 1,
    "aws:apigateway/method:Method": 10,  # six routes + ANY on each of the four resources
    "aws:apigateway/integration:Integration": 10,
    "aws:apigateway/deployment:Deployment": 1,
    "aws:apigateway/stage:Stage": 1,
    "aws:apigateway/methodSettings:MethodSettings": 1,
    "aws:apigateway/usagePlan:UsagePlan": 1,
    "aws:apigateway/apiKey:ApiKey": 1,
    "aws:apigateway/usagePlanKey:UsagePlanKey": 1,
    "aws:wafv2/webAcl:WebAcl": 1,
    "aws:wafv2/webAclAssociation:WebAclAssociation": 1,
    "aws:iam/instanceProfile:InstanceProfile": 1,
    "aws:cloudwatch/logGroup:LogGroup": 3,
    "aws:cloudwatch/metricAlarm:MetricAlarm": 4,
    "aws:cloudwatch/eventRule:EventRule": 2,
    "aws:cloudwatch/eventTarget:EventTarget": 2,
    "aws:cloudwatch/dashboard:Dashboard": 1,
    "aws:sns/topic:Topic": 2,
    "aws:sns/topicPolicy:TopicPolicy": 2,
}
COMPONENTS = {
    "vsr:service:Service",
    "vsr:storage:Bucket",
    "vsr:registry:WorkerImage",
    "vsr:network:Network",
    "vsr:iam:BatchRoles",
    "vsr:compute:Batch",
    "vsr:database:JobTable",
    "vsr:api:Api",
    "vsr:monitoring:Monitoring",
}


def _count(p: Program, typ: str) -> int:
    return len(p.of_type(typ))


def test_prod_registers_every_required_resource(prod: Program) -> None:
    missing = {t: (n, _count(prod, t)) for t, n in REQUIRED.items() if _count(prod, t) != n}
    assert not missing, f"type: (expected, found) {missing}"


def test_every_component_is_registered_and_registers_outputs(program: Program) -> None:
    types = {r["type"] for r in program.resources if not r["custom"]}
    assert types == COMPONENTS
    registered = [u.split("::")[-2].rsplit("$", 1)[-1] for u in program.components_with_outputs]
    assert sorted(t for t in registered if t != "pulumi:pulumi:Stack") == sorted(COMPONENTS)


def test_every_resource_is_a_child_of_a_vsr_component(program: Program) -> None:
    for r in program.resources:
        if r["type"] == "vsr:service:Service":
            continue
        assert "vsr:service:Service" in r["parent"], f"{r['type']} {r['name']} parent {r['parent']!r}"
        if r["custom"]:
            component = r["parent"].rsplit("::", 1)[0].rsplit("$", 1)[-1]
            assert component in COMPONENTS - {"vsr:service:Service"}, (r["name"], component)


def test_exports_name_the_service_endpoints(prod: Program) -> None:
    e = prod.exports
    assert e["api_url"] == "https://abc123.execute-api.us-east-1.amazonaws.com/prod/"
    assert e["api_key_id"] and e["api_key_value"]
    assert e["queue_spot"].endswith(":job-queue/vsr-prod-spot")
    assert e["queue_on_demand"].endswith(":job-queue/vsr-prod-on-demand")
    assert e["queue_cpu_spot"].endswith(":job-queue/vsr-prod-cpu-spot")
    assert e["queue_cpu_on_demand"].endswith(":job-queue/vsr-prod-cpu-on-demand")
    assert e["job_events_topic"].startswith("arn:aws:sns:") and e["job_events_topic"] != e["alarm_topic"]
    for stage in ("split", "upscale", "merge"):
        assert e[f"job_definition_{stage}"].endswith(f":job-definition/vsr-prod-{stage}:1")
    assert e["bucket"] and e["table"] and e["dashboard"] == "vsr-prod-monitoring"
    assert "@sha256:" in e["worker_image"]


def test_iam_auth_has_no_api_key_export(programs: dict[str, Program]) -> None:
    assert "api_key_id" not in programs["iam"].exports
    assert _count(programs["iam"], "aws:apigateway/apiKey:ApiKey") == 0
    assert _count(programs["iam"], "aws:apigateway/usagePlan:UsagePlan") == 0


def test_existing_network_and_given_image_create_neither(programs: dict[str, Program]) -> None:
    p = programs["iam"]
    assert _count(p, "aws:ec2/vpc:Vpc") == _count(p, "aws:ec2/subnet:Subnet") == 0
    assert _count(p, "aws:ecr/repository:Repository") == _count(p, "docker-build:index:Image") == 0
    ce = p.inputs("aws:batch/computeEnvironment:ComputeEnvironment", "vsr-dev-spot")["computeResources"]
    assert ce["subnets"] == ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
    upscale = json.loads(p.inputs("aws:batch/jobDefinition:JobDefinition", "vsr-dev-upscale")["containerProperties"])
    assert upscale["image"] == "public.ecr.aws/example/vsr-worker:1.0.0"


def test_runs_do_not_leak_into_each_other(runs: dict[str, dict[str, Program]]) -> None:
    shared, fresh = runs["shared"]["prod"], runs["fresh"]["prod"]

    def canonical(p: Program) -> list[str]:
        return sorted(json.dumps(r, sort_keys=True) for r in p.resources)

    assert len(fresh.resources) > 50
    assert canonical(shared) == canonical(fresh)
    assert shared.exports == fresh.exports


def test_worker_image_is_built_from_the_accelerator_dockerfile(prod: Program) -> None:
    image = prod.inputs("docker-build:index:Image")
    assert image["dockerfile"]["location"].endswith("runtime/worker/Dockerfile.neuron")
    assert image["push"] is True
    assert image["platforms"] == ["linux/amd64"]
    assert image["tags"][0].endswith(":inf1")
    assert image["registries"][0]["address"].endswith(
        ".amazonaws.com/" + image["tags"][0].split("/", 1)[1].split(":")[0]
    )


def test_every_accelerator_has_its_worker_dockerfile() -> None:
    from stack.settings import REPO_ROOT, WORKER_IMAGE_FLAVOURS, Accelerator

    assert set(WORKER_IMAGE_FLAVOURS) == set(Accelerator)
    for flavour in WORKER_IMAGE_FLAVOURS.values():
        assert (REPO_ROOT / "runtime" / "worker" / f"Dockerfile.{flavour}").is_file(), flavour
