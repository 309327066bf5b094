"""Run the real ``__main__.py`` under Pulumi's mocks and dump what it registered as JSON.

Run as ``python -m tests.stack.harness SPEC.json OUT.json``. Each program of SPEC runs with
fresh mocks, a fresh root stack, its own config and environment (Pulumi's runtime state is
process-global; the tests check that a run after others equals a run in a fresh process).
The stack's config comes from ``Pulumi.<STACK>.yaml`` exactly as the CLI passes it
(``vsr:key`` -> string, structured values as JSON); ``VSR_STACK_*`` environment variables
override it as in a real run. Writes, per program, ``{"resources", "calls", "exports",
"components_with_outputs", "error"}``.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import traceback
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import config as pulumi_config
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

REPO = Path(__file__).resolve().parents[2]
PROJECT = "vsr"
ACCOUNT = "123456789012"  # AWS's documentation example account
REGION = "us-east-1"
AMI = "ami-0abcdef1234567890"

RESOURCES: list[dict[str, Any]] = []
CALLS: list[dict[str, Any]] = []
PARENTS: dict[tuple[str, str], str] = {}
WITH_OUTPUTS: list[str] = []


def _arn(typ: str, name: str) -> str:
    service = typ.split(":")[1].split("/")[0]
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{typ.rsplit(':', 1)[-1].lower()}/{name}"


def _outputs(typ: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Plausible provider outputs for the attributes the program reads."""
    out = dict(inputs)
    out.setdefault("arn", _arn(typ, name))
    # Physical name: given, or Pulumi's auto-name (prefix + random suffix).
    physical = inputs.get("name") or f"{inputs.get('namePrefix') or name + '-'}1a2b3c"
    out.setdefault("name", physical)
    if typ == "aws:batch/jobDefinition:JobDefinition":
        prefix = f"arn:aws:batch:{REGION}:{ACCOUNT}:job-definition/{physical}"
        out.update(arn=f"{prefix}:1", arn_prefix=prefix, arnPrefix=prefix, revision=1)
    elif typ == "aws:batch/jobQueue:JobQueue":
        out["arn"] = f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/{physical}"
    elif typ == "aws:batch/computeEnvironment:ComputeEnvironment":
        out["arn"] = f"arn:aws:batch:{REGION}:{ACCOUNT}:compute-environment/{physical}"
    elif typ == "aws:s3/bucket:Bucket":
        out.update(bucket=physical, arn=f"arn:aws:s3:::{physical}")
    elif typ == "aws:dynamodb/table:Table":
        out["arn"] = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{physical}"
    elif typ == "aws:cloudwatch/logGroup:LogGroup":
        out["arn"] = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{physical}"
    elif typ == "aws:lambda/function:Function":
        out["invokeArn"] = f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{out['arn']}/invocations"
    elif typ == "aws:apigateway/restApi:RestApi":
        out.update(rootResourceId="root0", executionArn=f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{name}-id")
    elif typ == "aws:apigateway/stage:Stage":
        out["invokeUrl"] = f"https://abc123.execute-api.{REGION}.amazonaws.com/{inputs['stageName']}"
    elif typ == "aws:apigateway/apiKey:ApiKey":
        out["value"] = "example-api-key-value"
    elif typ == "aws:ecr/repository:Repository":
        out.update(repositoryUrl=f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{physical}", registryId=ACCOUNT)
    elif typ == "docker-build:index:Image":
        out["ref"] = f"{inputs['tags'][0].rsplit(':', 1)[0]}@sha256:{'0' * 64}"
    elif typ == "aws:ec2/launchTemplate:LaunchTemplate":
        out["latestVersion"] = 1
    elif typ == "aws:cloudwatch/dashboard:Dashboard":
        out["dashboardName"] = inputs["dashboardName"]
    return out


class Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        outputs = _outputs(args.typ, args.name, args.inputs)
        RESOURCES.append(
            {
                "type": args.typ,
                "name": args.name,
                "custom": bool(args.custom),
                "parent": PARENTS.get((args.typ, args.name), ""),
                "inputs": args.inputs,
                "outputs": outputs,
            }
        )
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list | None]:
        CALLS.append({"token": args.token, "args": args.args})
        results = {
            "aws:ssm/getParameter:getParameter": {
                "name": args.args.get("name"),
                "type": "String",
                "value": AMI,
                "insecureValue": AMI,
            },
            "aws:index/getRegion:getRegion": {"region": REGION, "name": REGION, "id": REGION},
            "aws:index/getCallerIdentity:getCallerIdentity": {
                "accountId": ACCOUNT,
                "arn": f"arn:aws:iam::{ACCOUNT}:user/example",
                "userId": "AIDAEXAMPLE",
                "id": ACCOUNT,
            },
            "aws:index/getPartition:getPartition": {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"},
            "aws:index/getAvailabilityZones:getAvailabilityZones": {
                "names": [f"{REGION}{z}" for z in "abcdef"],
                "zoneIds": [f"use1-az{i}" for i in range(1, 7)],
                "id": REGION,
            },
            "aws:ecr/getAuthorizationToken:getAuthorizationToken": {
                "userName": "AWS",
                "password": "example-token",
                "authorizationToken": "ZXhhbXBsZQ==",
                "proxyEndpoint": f"https://{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com",
                "id": ACCOUNT,
            },
        }
        if args.token not in results:
            raise NotImplementedError(f"unmocked call {args.token}")
        return results[args.token], []


class RecordingMonitor(pulumi_mocks.MockMonitor):
    def RegisterResource(self, request):
        PARENTS[(request.type, request.name)] = request.parent
        return super().RegisterResource(request)

    def RegisterResourceOutputs(self, request):
        WITH_OUTPUTS.append(request.urn)
        return super().RegisterResourceOutputs(request)


def stack_config(stack: str) -> dict[str, str]:
    """``Pulumi.<stack>.yaml``'s config as the CLI hands it to the program."""
    config = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())["config"]
    return {
        key: json.dumps(value)
        if isinstance(value, dict | list)
        else str(value).lower()
        if isinstance(value, bool)
        else str(value)
        for key, value in config.items()
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, pulumi.FileArchive | pulumi.FileAsset):
        return {"__file__": value.path}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)


def run(stack: str, env: dict[str, str]) -> dict[str, Any]:
    """One program run with fresh mocks, root stack, config and environment overrides."""
    for key in [k for k in os.environ if k.startswith("VSR_STACK_")]:
        del os.environ[key]
    os.environ.update(env)
    for recorded in (RESOURCES, CALLS, WITH_OUTPUTS):
        recorded.clear()
    PARENTS.clear()
    pulumi_settings.ROOT.set(None)  # set_mocks then registers a new root stack
    mocks = Mocks()
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=RecordingMonitor(mocks))
    pulumi_settings.SETTINGS.rpc_manager.clear()
    pulumi_config.set_all_config(stack_config(stack))
    exports: dict[str, Any] = {}

    def export(name: str, value: Any) -> None:
        exports[name] = value

    pulumi.export = export
    resolved: dict[str, Any] = {}

    async def program() -> None:
        runpy.run_path(str(REPO / "__main__.py"), run_name="__main__")
        for name, value in exports.items():
            resolved[name] = await pulumi.Output.from_input(value).future()

    error = None
    try:
        _sync_await(run_pulumi_func(program))
    except Exception as exc:  # the test reads the message
        error = {"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()}
    return _jsonable(
        {
            "resources": RESOURCES,
            "calls": CALLS,
            "exports": resolved,
            "components_with_outputs": WITH_OUTPUTS,
            "error": error,
        }
    )


if __name__ == "__main__":
    # argv: SPEC.json OUT.json; SPEC = {name: {"stack": ..., "env": {...}}}, run in order.
    spec = json.loads(Path(sys.argv[1]).read_text())
    results = {name: run(v["stack"], v["env"]) for name, v in spec.items()}
    Path(sys.argv[2]).write_text(json.dumps(results, sort_keys=True))
