"""Secure by default: private encrypted TLS-only bucket, authenticated throttled API, scoped IAM."""

from __future__ import annotations

import json
import re
from typing import Any

from stack.api import ROUTES
from stack.iam import RESOURCELESS_ACTIONS, lambda_policy, worker_policy
from tests.stack.conftest import Program

DATA_OR_SUBMIT_PREFIXES = ("s3:", "dynamodb:", "batch:SubmitJob", "batch:TerminateJob", "batch:CancelJob")


def _statements(doc: dict[str, Any]) -> list[dict[str, Any]]:
    st = doc["Statement"]
    return st if isinstance(st, list) else [st]


def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def _role_policy(p: Program, name: str) -> dict[str, Any]:
    return json.loads(p.inputs("aws:iam/rolePolicy:RolePolicy", name)["policy"])


def test_bucket_blocks_every_kind_of_public_access(program: Program) -> None:
    block = program.inputs("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    for key in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"):
        assert block[key] is True, key
    assert program.inputs("aws:s3/bucketOwnershipControls:BucketOwnershipControls")["rule"] == {
        "objectOwnership": "BucketOwnerEnforced"
    }


def test_bucket_policy_denies_plain_http(program: Program) -> None:
    bucket_arn = f"arn:aws:s3:::{program.exports['bucket']}"
    doc = json.loads(program.inputs("aws:s3/bucketPolicy:BucketPolicy")["policy"])
    deny = [s for s in _statements(doc) if s["Effect"] == "Deny" and "aws:SecureTransport" in json.dumps(s)]
    assert len(deny) == 1
    assert deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny[0]["Principal"] == "*" and deny[0]["Action"] == "s3:*"
    assert set(deny[0]["Resource"]) == {bucket_arn, f"{bucket_arn}/*"}
    assert not [s for s in _statements(doc) if s["Effect"] == "Allow"], "the bucket policy only denies"


def test_bucket_is_encrypted_by_default(program: Program) -> None:
    sse = program.inputs("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")[
        "rules"
    ]
    assert sse[0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] in ("AES256", "aws:kms")


def test_lifecycle_expires_intermediates_and_aborts_multipart_uploads(prod: Program, dev: Program) -> None:
    for p, days in ((prod, 7), (dev, 1)):
        rules = {
            r["id"]: r for r in p.inputs("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")["rules"]
        }
        jobs = rules["expire-intermediates"]
        assert (
            jobs["status"] == "Enabled" and jobs["filter"]["prefix"] == "jobs/" and jobs["expiration"]["days"] == days
        )
        abort = rules["abort-incomplete-multipart-uploads"]
        assert abort["status"] == "Enabled" and abort["abortIncompleteMultipartUpload"]["daysAfterInitiation"] == 1
    assert "expire-outputs" not in {
        r["id"] for r in prod.inputs("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")["rules"]
    }


def test_every_route_exists_and_is_a_lambda_proxy(program: Program) -> None:
    methods = program.of_type("aws:apigateway/method:Method")
    declared = sorted(m for _, m in ROUTES)
    # One ANY per resource forwards wrong methods to the handler's 405 (not API Gateway's 403).
    assert sorted(m["inputs"]["httpMethod"] for m in methods) == sorted([*declared, *["ANY"] * 4])
    assert declared == sorted(["POST", "POST", "GET", "GET", "DELETE", "POST"])  # the six routes of the API
    parts = {r["inputs"]["pathPart"] for r in program.of_type("aws:apigateway/resource:Resource")}
    assert parts == {"jobs", "{id}", "uploads"}
    for integration in program.of_type("aws:apigateway/integration:Integration"):
        i = integration["inputs"]
        assert i["type"] == "AWS_PROXY" and i["integrationHttpMethod"] == "POST"
        assert re.fullmatch(
            r"arn:aws:apigateway:[\w-]+:lambda:path/2015-03-31/functions/arn:aws:lambda:.+:function/vsr-\w+-api/invocations",
            i["uri"],
        )


def test_api_key_mode_requires_a_key_on_every_method(prod: Program) -> None:
    for m in prod.of_type("aws:apigateway/method:Method"):
        assert m["inputs"]["apiKeyRequired"] is True, m["name"]
        assert m["inputs"]["authorization"] == "NONE"
    plan = prod.inputs("aws:apigateway/usagePlan:UsagePlan")
    assert plan["throttleSettings"] == {"rateLimit": 20.0, "burstLimit": 40.0}
    assert plan["quotaSettings"] == {"limit": 5000.0, "period": "DAY"}
    assert plan["apiStages"][0]["stage"] == "prod"
    key = prod.inputs("aws:apigateway/usagePlanKey:UsagePlanKey")
    assert key["keyType"] == "API_KEY" and key["keyId"] == prod.exports["api_key_id"]


def test_iam_mode_signs_every_method(programs: dict[str, Program]) -> None:
    for m in programs["iam"].of_type("aws:apigateway/method:Method"):
        assert m["inputs"]["authorization"] == "AWS_IAM", m["name"]


def test_stage_is_prod_throttled_logged_and_size_limited(program: Program) -> None:
    stage = program.inputs("aws:apigateway/stage:Stage")
    assert stage["stageName"] == "prod"
    assert stage["accessLogSettings"]["destinationArn"].startswith("arn:aws:logs:")
    assert "$context.requestId" in stage["accessLogSettings"]["format"]
    settings = program.inputs("aws:apigateway/methodSettings:MethodSettings")
    assert settings["methodPath"] == "*/*"
    assert settings["settings"]["throttlingRateLimit"] > 0 and settings["settings"]["throttlingBurstLimit"] > 0
    acl = program.inputs("aws:wafv2/webAcl:WebAcl")
    size = acl["rules"][0]["statement"]["sizeConstraintStatement"]
    assert size["comparisonOperator"] == "GT" and size["size"] == 8192
    assert size["fieldToMatch"]["body"]["oversizeHandling"] == "MATCH"
    assert "block" in acl["rules"][0]["action"]
    assoc = program.inputs("aws:wafv2/webAclAssociation:WebAclAssociation")
    assert assoc["resourceArn"].endswith(f"/{program.one('aws:apigateway/stage:Stage')['name']}")


def test_lambda_may_only_be_invoked_by_this_api(prod: Program) -> None:
    perm = prod.inputs("aws:lambda/permission:Permission")
    assert perm["principal"] == "apigateway.amazonaws.com"
    assert perm["sourceArn"].startswith("arn:aws:execute-api:") and perm["sourceArn"].endswith("/prod/*/*")


def test_no_policy_grants_data_or_batch_submit_actions_on_star(program: Program) -> None:
    seen = 0
    for name, doc in program.policies():
        for st in _statements(doc):
            if st["Effect"] != "Allow":
                continue
            seen += 1
            actions = _as_list(st["Action"])
            if "*" in _as_list(st["Resource"]):
                assert set(actions) <= RESOURCELESS_ACTIONS, (name, actions)
            assert not any(a in ("*", "s3:*", "dynamodb:*", "batch:*") for a in actions), (name, actions)
    assert seen >= 10


def test_worker_role_reads_the_bucket_and_writes_only_job_files_and_results(prod: Program) -> None:
    bucket_arn = f"arn:aws:s3:::{prod.exports['bucket']}"
    doc = _role_policy(prod, "vsr-prod-batch-job-s3")
    grants = {st["Sid"]: st for st in _statements(doc)}
    assert set(grants) == {"ReadObjects", "WriteJobFiles", "WriteResults", "ListOwnBucket"}
    # Sources may be any key outside the service's prefixes: reads reach the whole bucket.
    read = grants["ReadObjects"]
    assert (read["Action"], read["Resource"]) == (["s3:GetObject"], [f"{bucket_arn}/*"])
    assert grants["WriteJobFiles"]["Resource"] == [f"{bucket_arn}/jobs/*"]
    assert grants["WriteResults"]["Resource"] == [f"{bucket_arn}/outputs/*"]
    assert "s3:DeleteObject" not in grants["WriteResults"]["Action"]
    writes = [a for st in _statements(doc) if st["Sid"] != "ReadObjects" for a in st["Action"]]
    assert "s3:GetObject" not in writes
    assert grants["ListOwnBucket"] == {
        "Sid": "ListOwnBucket",
        "Effect": "Allow",
        "Action": ["s3:ListBucket"],
        "Resource": [bucket_arn],
    }
    for st in _statements(doc):
        assert st["Effect"] == "Allow"
        for res in _as_list(st["Resource"]):
            assert res == bucket_arn or res.startswith(f"{bucket_arn}/"), res
        assert all(a.startswith("s3:") for a in _as_list(st["Action"]))


def test_lambda_submits_only_to_this_stacks_queues_and_stops_only_its_jobs(prod: Program) -> None:
    doc = _role_policy(prod, "vsr-prod-api-function")
    grants = {st["Sid"]: st for st in _statements(doc)}
    queues = {prod.exports[f"queue_{q}"] for q in ("spot", "on_demand", "cpu_spot", "cpu_on_demand")}
    defs = {prod.exports[f"job_definition_{s}"].rsplit(":", 1)[0] for s in ("split", "upscale", "merge")}
    assert set(grants["SubmitToOwnQueuesAndDefinitions"]["Resource"]) == queues | defs | {f"{d}:*" for d in defs}
    jobs = ["arn:aws:batch:us-east-1:123456789012:job/*"]
    created = grants["CreateTaggedJobs"]
    assert (created["Action"], created["Resource"]) == (["batch:SubmitJob", "batch:TagResource"], jobs)
    assert created["Condition"] == {"StringEquals": {"aws:RequestTag/vsr:stack": "vsr-prod"}}
    stop = grants["StopOwnJobs"]
    assert (stop["Action"], stop["Resource"]) == (["batch:TerminateJob"], jobs)
    assert stop["Condition"] == {"StringEquals": {"aws:ResourceTag/vsr:stack": "vsr-prod"}}
    env = prod.inputs("aws:lambda/function:Function")["environment"]["variables"]
    assert env["VSR_STACK"] == "vsr-prod"  # the value the Lambda tags its jobs with
    actions = {a for st in _statements(doc) for a in _as_list(st["Action"])}
    assert not actions & {"batch:CancelJob", "s3:DeleteObject", "dynamodb:UpdateItem", "dynamodb:Query"}
    table = grants["JobTable"]
    assert table["Resource"] == [f"arn:aws:dynamodb:us-east-1:123456789012:table/{prod.exports['table']}"]
    s3 = {r for st in _statements(doc) for r in _as_list(st["Resource"]) if r.startswith("arn:aws:s3:::")}
    bucket_arn = f"arn:aws:s3:::{prod.exports['bucket']}"
    assert s3 == {bucket_arn, f"{bucket_arn}/*", f"{bucket_arn}/outputs/*"}
    deny = grants["NeverWriteResults"]
    assert deny["Effect"] == "Deny" and deny["Resource"] == [f"{bucket_arn}/outputs/*"]


def test_role_policies_are_the_documents_the_e2e_tests_evaluate(program: Program) -> None:
    """The deployed documents equal stack.iam's functions of this run's resolved ARNs, which
    tests/test_cloud_e2e.py checks against every AWS call the Lambda and the worker make."""
    e = program.exports
    bucket_arn = f"arn:aws:s3:::{e['bucket']}"
    name = program.one("aws:lambda/function:Function")["name"].removesuffix("-api")
    assert _role_policy(program, f"{name}-batch-job-s3") == worker_policy(bucket_arn, "jobs/", "outputs/")
    assert _role_policy(program, f"{name}-api-function") == lambda_policy(
        stack=name,
        bucket_arn=bucket_arn,
        output_prefix="outputs/",
        table_arn=f"arn:aws:dynamodb:us-east-1:123456789012:table/{e['table']}",
        queue_arns=[e[f"queue_{q}"] for q in sorted(("spot", "on_demand", "cpu_spot", "cpu_on_demand"))],
        job_definition_arn_prefixes=[e[f"job_definition_{s}"].rsplit(":", 1)[0] for s in ("merge", "split", "upscale")],
        job_arn_pattern="arn:aws:batch:us-east-1:123456789012:job/*",
        log_group_arn=f"arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/{name}-api",
    )


def test_lambda_environment_names_the_stack(prod: Program) -> None:
    env = prod.inputs("aws:lambda/function:Function")["environment"]["variables"]
    e = prod.exports
    assert env == {
        "VSR_BUCKET": e["bucket"],
        "VSR_TABLE": e["table"],
        "VSR_QUEUE_SPOT": e["queue_spot"],
        "VSR_QUEUE_ON_DEMAND": e["queue_on_demand"],
        "VSR_QUEUE_CPU_SPOT": e["queue_cpu_spot"],
        "VSR_QUEUE_CPU_ON_DEMAND": e["queue_cpu_on_demand"],
        "VSR_JOB_DEFINITION_SPLIT": e["job_definition_split"],
        "VSR_JOB_DEFINITION_UPSCALE": e["job_definition_upscale"],
        "VSR_JOB_DEFINITION_MERGE": e["job_definition_merge"],
        "VSR_INPUT_PREFIX": "inputs/",
        "VSR_OUTPUT_PREFIX": "outputs/",
        "VSR_WORK_PREFIX": "jobs/",
        "VSR_MAX_INPUT_BYTES": "21474836480",
        "VSR_MAX_DURATION_SECONDS": "14400",
        "VSR_SEGMENT_TIME_MIN": "10.0",
        "VSR_SEGMENT_TIME_MAX": "300.0",
        "VSR_DEFAULT_MODEL": "realesr-animevideov3",
        "VSR_DEVICE": "neuron",
        "VSR_JOB_TTL_DAYS": "90",
        "VSR_STACK": "vsr-prod",
    }


def test_lambda_runs_the_api_package_from_the_built_archives(prod: Program) -> None:
    fn = prod.inputs("aws:lambda/function:Function")
    assert fn["runtime"] == "python3.12" and fn["handler"] == "vsr_api.handler.handler"
    assert fn["code"] == {"__file__": prod.archives["VSR_STACK_API__FUNCTION_ARCHIVE"]}
    layer = prod.inputs("aws:lambda/layerVersion:LayerVersion")
    assert layer["code"] == {"__file__": prod.archives["VSR_STACK_API__LAYER_ARCHIVE"]}
    assert layer["compatibleRuntimes"] == ["python3.12"]
    assert fn["loggingConfig"]["logGroup"] == "/aws/lambda/vsr-prod-api"
    logs = {g["inputs"].get("name"): g["inputs"] for g in prod.of_type("aws:cloudwatch/logGroup:LogGroup")}
    assert logs["/aws/lambda/vsr-prod-api"]["retentionInDays"] == 90


def test_instances_use_imdsv2_and_encrypted_disks(program: Program) -> None:
    lt = program.inputs("aws:ec2/launchTemplate:LaunchTemplate")
    assert lt["metadataOptions"]["httpTokens"] == "required"
    ebs = lt["blockDeviceMappings"][0]["ebs"]
    assert ebs["encrypted"] == "true" and ebs["volumeType"] == "gp3" and ebs["volumeSize"] >= 30
    sg = program.of_type("aws:ec2/securityGroup:SecurityGroup")
    assert all(not g["inputs"].get("ingress") for g in sg)


def test_job_table_keys_ttl_billing_and_recovery(prod: Program, dev: Program) -> None:
    for p, pitr in ((prod, True), (dev, False)):
        t = p.inputs("aws:dynamodb/table:Table")
        assert t["hashKey"] == "job_id" and t["attributes"] == [{"name": "job_id", "type": "S"}]
        assert t["ttl"] == {"attributeName": "expires_at", "enabled": True}
        assert t["billingMode"] == "PAY_PER_REQUEST"
        assert t["pointInTimeRecovery"]["enabled"] is pitr
        assert t["serverSideEncryption"]["enabled"] is True
        assert t["deletionProtectionEnabled"] is pitr


def test_ecr_scans_on_push_and_expires_old_images(prod: Program) -> None:
    repo = prod.inputs("aws:ecr/repository:Repository")
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    rules = json.loads(prod.inputs("aws:ecr/lifecyclePolicy:LifecyclePolicy")["policy"])["rules"]
    assert {r["selection"]["countType"] for r in rules} == {"sinceImagePushed", "imageCountMoreThan"}


def test_alarms_watch_failed_jobs_and_lambda_errors(prod: Program) -> None:
    alarms = {a["name"]: a["inputs"] for a in prod.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    failed = alarms["vsr-prod-monitoring-failed-jobs"]
    assert failed["metricName"] == "TriggeredRules" and failed["threshold"] == 3
    assert alarms["vsr-prod-monitoring-lambda-errors"]["dimensions"]["FunctionName"].startswith("vsr-prod-api")
    topic = prod.one("aws:sns/topic:Topic", "vsr-prod-monitoring-alarms")["name"]
    assert all(any(topic in arn for arn in a["alarmActions"]) for a in alarms.values())
    rule = prod.one("aws:cloudwatch/eventRule:EventRule", "vsr-prod-monitoring-failed-jobs")
    assert failed["dimensions"] == {"RuleName": rule["outputs"]["name"]}
    subscription = prod.inputs("aws:sns/topicSubscription:TopicSubscription")
    assert subscription["endpoint"] == "ops@example.com" and topic in subscription["topic"]
    widgets = json.loads(prod.inputs("aws:cloudwatch/dashboard:Dashboard")["dashboardBody"])["widgets"]
    assert len(widgets) >= 3
