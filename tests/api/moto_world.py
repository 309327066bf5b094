"""A moto world for the API: one deployment of the stack in moto, and the service over it.

The world is built with the stack's own functions for one accelerator's ``StackSettings``:
the job definitions Batch runs (``stack.compute.job_definition_request``), the Lambda's
environment (``stack.api.lambda_environment``, read by ``ApiSettings``) and the IAM policies
of the Lambda, the worker job role and the bucket (``stack.iam``, ``stack.storage``). On a
moto server (``EndpointSession``) the Lambda and the worker sign with access keys of their
own, so the server's recorder (tests/aws_calls.py) knows which principal made each call and
:meth:`World.iam_problems` can check each against that principal's policy.

Use inside ``mock_aws(config=MOTO_BATCH)`` or with an ``EndpointSession``. Every SubmitJob and
TerminateJob request the Lambda makes is also recorded client-side (``World.calls``).
"""

from __future__ import annotations

import atexit
import base64
import json
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import requests
from botocore.config import Config
from requests.adapters import BaseAdapter

from stack.api import lambda_environment
from stack.compute import STAGES, job_definition_request
from stack.iam import lambda_policy, worker_policy
from stack.settings import StackSettings
from stack.storage import tls_only_policy
from tests.aws_calls import AwsCall
from tests.iam_eval import Authz, authorizations, decide, granted, job_tags, missing_required_resources
from vsr_api.handler import Handler, build_cloud_service, make_handler
from vsr_api.service import JobService
from vsr_api.settings import ApiSettings
from vsr_client.client import Client

API_URL = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"
REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account
NAME = "vsr-test"
BUCKET = f"{NAME}-bucket"
TABLE = f"{NAME}-jobs"
MOTO_BATCH = {"batch": {"use_docker": False}}
# The stack's queues: each becomes lambda_environment(queue_<kind>=ARN) and ApiSettings.queue_<kind>.
QUEUES = ("spot", "on_demand", "cpu_spot", "cpu_on_demand")
LAMBDA, WORKER = "lambda", "worker"  # the principals that make calls


@cache
def _standin_archive() -> str:
    """StackSettings checks the Lambda archives exist; the world never deploys them."""
    folder = tempfile.mkdtemp(prefix="vsr-world-")
    atexit.register(shutil.rmtree, folder, True)
    path = Path(folder) / "standin.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("vsr_api/handler.py", "")
    return str(path)


def stack_settings(accelerator: str = "cpu") -> StackSettings:
    """One accelerator's stack, with the short segments the tests' videos need allowed."""
    archive = _standin_archive()
    return StackSettings(
        accelerator=accelerator,
        api={"function_archive": archive, "layer_archive": archive},
        limits={"segment_time_min": 1.0, "segment_time_max": 600.0},
    )


@dataclass(frozen=True)
class Names:
    """Physical names of one deployment, as the stack names them (prefix ``name``)."""

    name: str
    region: str = REGION

    @property
    def bucket(self) -> str:
        return f"{self.name}-bucket"

    @property
    def bucket_arn(self) -> str:
        return f"arn:aws:s3:::{self.bucket}"

    @property
    def table(self) -> str:
        return f"{self.name}-jobs"

    @property
    def table_arn(self) -> str:
        return f"arn:aws:dynamodb:{self.region}:{ACCOUNT}:table/{self.table}"

    @property
    def job_role_arn(self) -> str:
        return f"arn:aws:iam::{ACCOUNT}:role/{self.name}-job"

    @property
    def job_log_group(self) -> str:
        return f"/aws/batch/{self.name}"

    @property
    def lambda_log_group_arn(self) -> str:
        return f"arn:aws:logs:{self.region}:{ACCOUNT}:log-group:/aws/lambda/{self.name}-api"

    def key_id(self, principal: str) -> str:
        """The access key a principal of this deployment signs with."""
        return f"{self.name}-{principal}"


@dataclass
class World:
    session: Any
    names: Names
    stack: StackSettings
    settings: ApiSettings
    service: JobService
    handler: Handler
    s3: Any  # the test's own (admin) client
    batch: Any  # the Lambda's client
    job_definitions: dict[str, str]  # stage -> ARN
    calls: dict[str, list[dict]] = field(default_factory=lambda: {"SubmitJob": [], "TerminateJob": []})
    job_ids: dict[str, str] = field(default_factory=dict)  # jobName -> jobId, as Batch answered

    @property
    def role_credentials(self) -> dict[str, dict[str, str]]:
        """Job role ARN -> the credentials a container of that role gets (the Batch emulator's)."""
        key = self.names.key_id(WORKER)
        return {self.names.job_role_arn: {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": "testing"}}

    def policies(self) -> tuple[dict[str, dict[str, dict]], dict[str, dict]]:
        """(principal -> {policy name: identity policy}, {name: resource policy}) of the stack."""
        n, st = self.names, self.stack.storage
        lambda_doc = lambda_policy(
            stack=self.settings.stack,
            bucket_arn=n.bucket_arn,
            output_prefix=st.output_prefix,
            table_arn=n.table_arn,
            queue_arns=[getattr(self.settings, f"queue_{kind}") for kind in QUEUES],
            job_definition_arn_prefixes=[arn.rsplit(":", 1)[0] for arn in self.job_definitions.values()],
            job_arn_pattern=f"arn:aws:batch:{n.region}:{ACCOUNT}:job/*",
            log_group_arn=n.lambda_log_group_arn,
        )
        identity = {
            LAMBDA: {"lambda": lambda_doc},
            WORKER: {"worker": worker_policy(n.bucket_arn, st.work_prefix, st.output_prefix)},
        }
        return identity, {"bucket": tls_only_policy(n.bucket_arn)}

    def principal(self, call: AwsCall) -> str | None:
        return {self.names.key_id(p): p for p in (LAMBDA, WORKER)}.get(call.key_id)

    def authorizations(self, calls: list[AwsCall]) -> list[tuple[str, AwsCall, Authz]]:
        """(principal, call, authorization) for every call this deployment's principals made."""
        tags = job_tags(calls)
        return [
            (who, call, authz)
            for call in calls
            if (who := self.principal(call)) is not None
            for authz in authorizations(call, ACCOUNT, tags)
        ]

    def iam_problems(self, calls: list[AwsCall], identity: dict | None = None) -> list[str]:
        """Every recorded authorization the stack's policies would deny, and every call the
        action mapping cannot place; empty when IAM allows all the code did."""
        own, resource = self.policies()
        identity = identity or own
        problems = []
        for who, call, authz in self.authorizations(calls):
            if not decide(authz, identity[who], resource).allowed:
                problems.append(f"{who} {call.operation} -> {authz.action} on {authz.resource} denied")
        for call in calls:
            if self.principal(call):
                problems += missing_required_resources(authorizations(call, ACCOUNT, {}))
        return problems

    def unused_grants(self, calls: list[AwsCall]) -> dict[str, set[tuple[str, str, str]]]:
        """principal -> (policy, Sid, action) of every Allow no recorded call needed."""
        identity, resource = self.policies()
        used: set[tuple[str, str, str]] = set()
        for who, _, authz in self.authorizations(calls):
            used |= set(decide(authz, identity[who], resource).allows)
        return {who: granted(docs) - used for who, docs in identity.items()}


def _batch_resources(world_names: Names, stack: StackSettings, batch: Any, iam: Any) -> dict[str, str]:
    n = world_names.name
    role = iam.create_role(RoleName=f"{n}-batch-service", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    env = batch.create_compute_environment(computeEnvironmentName=f"{n}-ce", type="UNMANAGED", serviceRole=role)
    arns = {}
    for kind in QUEUES:
        q = batch.create_job_queue(
            jobQueueName=f"{n}-{kind.replace('_', '-')}",
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env["computeEnvironmentArn"]}],
        )
        arns[kind] = q["jobQueueArn"]
    for stage in STAGES:
        request = job_definition_request(
            stack,
            stage,
            image="vsr-worker:test",
            job_role_arn=world_names.job_role_arn,
            log_group=world_names.job_log_group,
            region=world_names.region,
            bucket=world_names.bucket,
        )
        arns[stage] = batch.register_job_definition(jobDefinitionName=f"{n}-{stage}", **request)["jobDefinitionArn"]
    return arns


class EndpointSession:
    """A boto3 session whose clients all talk to one endpoint (a moto server), signing with
    ``access_key`` (the test's own ``testing``, or a principal's key)."""

    def __init__(self, endpoint_url: str, access_key: str = "testing") -> None:
        self._session = boto3.session.Session(
            region_name=REGION, aws_access_key_id=access_key, aws_secret_access_key="testing"
        )
        self.endpoint_url = endpoint_url

    def client(self, name: str, config: Any = None, **kwargs: Any) -> Any:
        if name == "s3":  # bucket.127.0.0.1 does not resolve: path style stands in for DNS
            path = Config(s3={"addressing_style": "path"})
            config = config.merge(path) if config else path
        return self._session.client(name, endpoint_url=self.endpoint_url, config=config, **kwargs)

    def signing_as(self, access_key: str) -> EndpointSession:
        return EndpointSession(self.endpoint_url, access_key)


def build_world(session: Any = None, accelerator: str = "cpu", name: str = NAME, **overrides: Any) -> World:
    """Create one deployment's resources and its API service. On an ``EndpointSession`` the
    Lambda's clients sign with the Lambda's key; ``overrides`` adjust its ApiSettings."""
    session = session or boto3.session.Session(region_name=REGION)
    names = Names(name)
    stack = stack_settings(accelerator)
    s3 = session.client("s3")
    s3.create_bucket(Bucket=names.bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    session.client("dynamodb").create_table(
        TableName=names.table,
        KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    arns = _batch_resources(names, stack, session.client("batch"), session.client("iam"))
    env = lambda_environment(
        stack=name,
        settings=stack,
        bucket=names.bucket,
        table=names.table,
        queues={kind: arns[kind] for kind in QUEUES},
        job_definitions={stage: arns[stage] for stage in STAGES},
    )
    settings = ApiSettings(**{k.removeprefix("VSR_").lower(): v for k, v in env.items()}, **overrides)
    lambda_session = session.signing_as(names.key_id(LAMBDA)) if isinstance(session, EndpointSession) else session
    service = build_cloud_service(settings, lambda_session)
    batch = service.scheduler.batch  # type: ignore[attr-defined]
    world = World(
        session,
        names,
        stack,
        settings,
        service,
        make_handler(lambda: service),
        s3,
        batch,
        {stage: arns[stage] for stage in STAGES},
    )

    def record(name: str):
        def hook(params: dict, **_: Any) -> None:
            world.calls[name].append(dict(params))

        return hook

    def answered(parsed: dict, **_: Any) -> None:
        if "jobId" in parsed:
            world.job_ids[parsed["jobName"]] = parsed["jobId"]

    for name_ in world.calls:
        batch.meta.events.register(f"provide-client-params.batch.{name_}", record(name_))
    batch.meta.events.register("after-call.batch.SubmitJob", answered)
    return world


def proxy_event(method: str, path: str, body: Any = None, headers: dict | None = None, raw: str | None = None) -> dict:
    """An API Gateway REST proxy event as the prod stage delivers it."""
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


def sdk(world: World) -> Client:
    """The SDK on ``world``'s API: API calls reach the handler in-process; presigned URLs go
    over HTTP to the moto server, as they would to S3."""
    session = requests.Session()
    session.mount(API_URL, HandlerAdapter(world))
    return Client(API_URL, api_key="k", session=session, retries=1, backoff=0.01)
