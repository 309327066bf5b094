"""The failed-job alarm and the job events topic, per vsr job, judged on Batch's own events.

The rules and targets the prod program registers are put into moto's EventBridge (PutRule
parses the pattern, PutTargets takes the input transformer), with an SQS queue standing in for
each SNS topic (moto's EventBridge delivers to SQS, not SNS; the pattern and the transformer
do not depend on the target). Then "Batch Job State Change" events shaped like the example in
the AWS Batch user guide (its ``detail`` is DescribeJobs' JobDetail: array parents carry
``arrayProperties.size``, children ``arrayProperties.index`` and a ``<parent>:<index>`` id)
go through PutEvents, and the test reads what each target received.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from stack.monitoring import EVENT_TEMPLATE, FAILED_TEMPLATE, MESSAGE_PATHS
from tests.stack.conftest import Program
from tests.stack.harness import ACCOUNT, REGION
from vsr_client.jobgraph import CANCEL_REASON_PREFIX

RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
VSR_JOB = "0f8e2c1a9b7d4e6f"
PARENT = "4c7599ae-0a82-49aa-ba5a-4727fcce14a8"
# Filters moto's matcher implements; it lets any other filter name match everything.
IMPLEMENTED_FILTERS = {"prefix", "anything-but"}


def batch_event(p: Program, stage: str, status: str, **extra: Any) -> dict[str, Any]:
    """A job state change of one of the stack's jobs (the fields of the user guide's example)."""
    job_id = extra.pop("job_id", f"{stage}-{PARENT}")
    queue = p.exports["queue_spot" if stage == "upscale" else "queue_cpu_spot"]
    detail = {
        "jobArn": f"arn:aws:batch:{REGION}:{ACCOUNT}:job/{job_id}",
        "jobName": f"vsr-{VSR_JOB}-{stage}",
        "jobId": job_id,
        "jobQueue": extra.pop("queue", queue),
        "status": status,
        "attempts": [],
        "createdAt": 1641944200058,
        "retryStrategy": {"attempts": 3, "evaluateOnExit": []},
        "dependsOn": [],
        "jobDefinition": extra.pop("definition", p.exports[f"job_definition_{stage}"]),
        "parameters": {"manifest": f"s3://{p.exports['bucket']}/jobs/{VSR_JOB}/manifest.json", "job_id": VSR_JOB},
        "container": {"image": "example/vsr-worker", "command": ["vsr-worker", stage], "environment": []},
        "tags": {"resourceArn": f"arn:aws:batch:{REGION}:{ACCOUNT}:job/{job_id}"},
        "propagateTags": True,
        "platformCapabilities": ["EC2"],
        **extra,
    }
    return {"Source": "aws.batch", "DetailType": "Batch Job State Change", "Detail": json.dumps(detail)}


def failed_300_segment_job(p: Program) -> list[dict[str, Any]]:
    """Split succeeds, one of 300 upscale children fails (retries exhausted), the array parent
    fails, and Batch fails the merge that depended on it."""
    children = [
        batch_event(
            p,
            "upscale",
            "FAILED" if i == 7 else "SUCCEEDED",
            job_id=f"{PARENT}:{i}",
            arrayProperties={"index": i},
            statusReason="Essential container in task exited" if i == 7 else "",
        )
        for i in range(300)
    ]
    return [
        batch_event(p, "split", "SUCCEEDED"),
        *children,
        batch_event(
            p,
            "upscale",
            "FAILED",
            job_id=PARENT,
            statusReason="Array Child Job failed",
            arrayProperties={"size": 300, "statusSummary": {"SUCCEEDED": 299, "FAILED": 1}},
        ),
        batch_event(p, "merge", "FAILED", statusReason="Dependent Job failed"),
    ]


@pytest.fixture()
def eventbridge(prod: Program) -> Iterator:
    """``send(events)`` -> {rule resource name: [message bodies its target received]}."""
    with mock_aws():
        events = boto3.client("events", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        queues = {}
        for rule in prod.of_type(RULE):
            physical = rule["outputs"]["name"]
            events.put_rule(Name=physical, EventPattern=rule["inputs"]["eventPattern"], State="ENABLED")
            (target,) = [t["inputs"] for t in prod.of_type(TARGET) if t["inputs"]["rule"] == physical]
            url = sqs.create_queue(QueueName=rule["name"])["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            transformer = target["inputTransformer"]
            events.put_targets(
                Rule=physical,
                Targets=[
                    {
                        "Id": "topic",
                        "Arn": arn,
                        "InputTransformer": {
                            "InputPathsMap": transformer["inputPaths"],
                            "InputTemplate": transformer["inputTemplate"],
                        },
                    }
                ],
            )
            queues[rule["name"]] = url

        def send(entries: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
            for i in range(0, len(entries), 10):
                answer = events.put_events(Entries=entries[i : i + 10])
                assert answer["FailedEntryCount"] == 0, answer
            received = {}
            for name, url in queues.items():
                bodies = []
                while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
                    for m in batch:
                        bodies.append(json.loads(m["Body"]))
                        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
                received[name] = bodies
            return received

        yield send


def test_a_failed_300_segment_job_alarms_once_and_ends_once(prod: Program, eventbridge) -> None:
    received = eventbridge(failed_300_segment_job(prod))
    (alarm,) = received["vsr-prod-monitoring-failed-jobs"]
    (ended,) = received["vsr-prod-monitoring-job-events"]
    assert alarm["job_id"] == ended["job_id"] == VSR_JOB
    assert alarm["message"] == f"vsr job {VSR_JOB} failed (details: GET /jobs/{VSR_JOB}): Dependent Job failed"
    assert (ended["status"], ended["message"]) == ("FAILED", f"vsr job {VSR_JOB} ended FAILED: Dependent Job failed")
    for body in (alarm, ended):  # a readable message, not the raw event
        assert set(body) == {"message", "job_id", "status", "reason", "batch_job_id"}
        assert body["batch_job_id"] == f"merge-{PARENT}"


def test_a_successful_job_sends_one_event_and_no_alarm(prod: Program, eventbridge) -> None:
    run = [
        batch_event(prod, "split", "SUCCEEDED"),
        *(
            batch_event(prod, "upscale", "SUCCEEDED", job_id=f"{PARENT}:{i}", arrayProperties={"index": i})
            for i in range(3)
        ),
        batch_event(prod, "upscale", "SUCCEEDED", job_id=PARENT, arrayProperties={"size": 3, "statusSummary": {}}),
        batch_event(prod, "merge", "RUNNABLE"),
        batch_event(prod, "merge", "RUNNING"),
        batch_event(prod, "merge", "SUCCEEDED", statusReason="Essential container in task exited"),
    ]
    received = eventbridge(run)
    assert received["vsr-prod-monitoring-failed-jobs"] == []
    (ended,) = received["vsr-prod-monitoring-job-events"]
    assert (ended["job_id"], ended["status"]) == (VSR_JOB, "SUCCEEDED")


def test_a_cancelled_job_ends_but_does_not_alarm(prod: Program, eventbridge) -> None:
    reason = f"{CANCEL_REASON_PREFIX} (vsr job {VSR_JOB})"  # what BatchScheduler.cancel sends
    received = eventbridge([batch_event(prod, "merge", "FAILED", statusReason=reason)])
    assert received["vsr-prod-monitoring-failed-jobs"] == []
    (ended,) = received["vsr-prod-monitoring-job-events"]
    assert (ended["status"], ended["reason"]) == ("FAILED", reason)


def test_other_stacks_and_look_alike_definitions_do_not_match(prod: Program, eventbridge) -> None:
    merge = prod.exports["job_definition_merge"]
    other = [
        batch_event(
            prod, "merge", "FAILED", statusReason="x", definition=merge.replace("vsr-prod-merge", "vsr-dev-merge")
        ),
        batch_event(
            prod, "merge", "FAILED", statusReason="x", definition=merge.replace("vsr-prod-merge", "vsr-prod-merge2")
        ),
        batch_event(prod, "merge", "FAILED", statusReason="x", queue=prod.exports["queue_cpu_spot"] + "-other"),
        batch_event(prod, "split", "FAILED", statusReason="Essential container in task exited"),
    ]
    assert eventbridge(other) == {"vsr-prod-monitoring-failed-jobs": [], "vsr-prod-monitoring-job-events": []}


def test_patterns_use_only_filters_the_matcher_implements(prod: Program) -> None:
    def filters(node: Any, in_list: bool = False) -> set[str]:
        """Named filters are the keys of objects inside a pattern's value lists."""
        if isinstance(node, dict):
            own = set(node) if in_list else set()
            return own | {f for v in node.values() for f in filters(v)}
        if isinstance(node, list):
            return {f for v in node for f in filters(v, in_list=True)}
        return set()

    for rule in prod.of_type(RULE):
        pattern = json.loads(rule["inputs"]["eventPattern"])
        assert filters(pattern) and filters(pattern) <= IMPLEMENTED_FILTERS, rule["name"]


def test_messages_use_the_json_path_syntax_eventbridge_supports() -> None:
    # The EventBridge user guide: dot notation, dashes, underscores, alphanumerics (no brackets).
    for path in MESSAGE_PATHS.values():
        assert re.fullmatch(r"\$(\.[A-Za-z0-9_-]+)+", path), path
    for template in (FAILED_TEMPLATE, EVENT_TEMPLATE):
        placeholders = set(re.findall(r"<([A-Za-z0-9_-]+)>", template))
        assert placeholders <= set(MESSAGE_PATHS), placeholders - set(MESSAGE_PATHS)
        filled = re.sub(r"<[A-Za-z0-9_-]+>", "x", template)
        assert json.loads(filled)["job_id"] == "x"  # valid JSON once filled
