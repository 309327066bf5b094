"""A moto world for the API: bucket, job table, Batch queues and job definitions, the service.

Use inside ``mock_aws(config={"batch": {"use_docker": False}})``. Every SubmitJob and
TerminateJob request the Lambda makes is recorded (``World.calls``) before moto sees it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import boto3

from vsr_api.handler import Handler, build_cloud_service, make_handler
from vsr_api.service import JobService
from vsr_api.settings import ApiSettings

REGION = "eu-west-1"
BUCKET = "vsr-test-bucket"
TABLE = "vsr-test-jobs"
MOTO_BATCH = {"batch": {"use_docker": False}}


@dataclass
class World:
    session: boto3.session.Session
    settings: ApiSettings
    service: JobService
    handler: Handler
    s3: Any
    batch: Any
    calls: dict[str, list[dict]] = field(default_factory=lambda: {"SubmitJob": [], "TerminateJob": []})


def _batch_resources(batch: Any, iam: Any) -> dict[str, str]:
    role = iam.create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    env = batch.create_compute_environment(computeEnvironmentName="vsr-ce", type="UNMANAGED", serviceRole=role)
    names = {}
    for queue in ("spot", "on-demand", "cpu-spot", "cpu-on-demand"):
        q = batch.create_job_queue(
            jobQueueName=f"vsr-{queue}",
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env["computeEnvironmentArn"]}],
        )
        names[queue] = q["jobQueueArn"]
    for stage in ("split", "upscale", "merge"):
        jd = batch.register_job_definition(
            jobDefinitionName=f"vsr-{stage}",
            type="container",
            parameters={"manifest": "s3://placeholder/manifest.json"},
            containerProperties={
                "image": "vsr-worker:test",
                "command": ["vsr-worker", stage, "--manifest", "Ref::manifest"],
                "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
            },
        )
        names[stage] = jd["jobDefinitionArn"]
    return names


class EndpointSession:
    """A boto3 session whose clients all talk to one endpoint (a ThreadedMotoServer)."""

    def __init__(self, endpoint_url: str) -> None:
        self._session = boto3.session.Session(
            region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        self.endpoint_url = endpoint_url

    def client(self, name: str, **kwargs: Any) -> Any:
        return self._session.client(name, endpoint_url=self.endpoint_url, **kwargs)


def build_world(session: Any = None, **overrides: Any) -> World:
    session = session or boto3.session.Session(region_name=REGION)
    s3 = session.client("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    session.client("dynamodb").create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    names = _batch_resources(session.client("batch"), session.client("iam"))
    settings = ApiSettings(
        bucket=BUCKET,
        table=TABLE,
        queue_spot=names["spot"],
        queue_on_demand=names["on-demand"],
        queue_cpu_spot=names["cpu-spot"],
        queue_cpu_on_demand=names["cpu-on-demand"],
        job_definition_split=names["split"],
        job_definition_upscale=names["upscale"],
        job_definition_merge=names["merge"],
        **overrides,
    )
    service = build_cloud_service(settings, session)
    batch = service.scheduler.batch  # type: ignore[attr-defined]
    world = World(session, settings, service, make_handler(lambda: service), s3, batch)

    def record(name: str):
        def hook(params: dict, **_: Any) -> None:
            world.calls[name].append(dict(params))

        return hook

    for name in world.calls:
        batch.meta.events.register(f"provide-client-params.batch.{name}", record(name))
    return world


def proxy_event(method: str, path: str, body: Any = None, headers: dict | None = None, raw: str | None = None) -> dict:
    """An API Gateway REST proxy event as the prod stage delivers it."""
    import json

    text = raw if raw is not None else (json.dumps(body) if body is not None else None)
    hdrs = {"Content-Type": "application/json", "Host": "abc123.execute-api.eu-west-1.amazonaws.com"}
    hdrs.update(headers or {})
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": hdrs,
        "multiValueHeaders": {k: [v] for k, v in hdrs.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": f"/prod{path}",
            "stage": "prod",
            "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
            "requestId": "test-request",
            "identity": {"sourceIp": "203.0.113.7"},
        },
        "body": text,
        "isBase64Encoded": False,
    }


class FakeContext:
    function_name = "vsr-api"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:vsr-api"
    aws_request_id = "test-request"
