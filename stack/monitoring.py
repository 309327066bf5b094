"""CloudWatch: alarms on failed vsr jobs, Lambda errors and API 5xx; job events; one dashboard.

One vsr job is three Batch jobs (split, an upscale array of up to 10,000 children, merge).
Its end is the merge job's end: merge depends on every other stage, and AWS Batch moves a job
whose dependency failed from PENDING to FAILED, so each vsr job yields exactly one merge
SUCCEEDED or FAILED state change, whatever stage failed and however many children it had.
Matching on the merge job definition (an ARN prefix) therefore never matches array children
(they belong to the upscale definition), and a failed 300-segment job sends one message.

- Failed jobs -> the alarm topic: merge FAILED, except cancellations by the API (their
  statusReason starts with ``CANCEL_REASON_PREFIX``). Batch publishes no failed-job metric;
  the rule's ``TriggeredRules`` metric drives the alarm.
- Job events -> the job events topic (a stack output): merge SUCCEEDED or FAILED, so callers
  can subscribe (e-mail, HTTPS, SQS) instead of polling.

Both send a short JSON message built by an input transformer (the vsr job id comes from the
job's ``job_id`` parameter, which the API sets on every SubmitJob), never the raw event. The
topics are not KMS-encrypted because EventBridge and CloudWatch cannot publish to a topic
under the AWS-managed SNS key; they carry job ids and states, no video data.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from stack.settings import MonitoringSettings
from vsr_client.jobgraph import CANCEL_REASON_PREFIX, JOB_ID_PARAMETER

PERIOD = 300
# What the messages carry: EventBridge JSON paths into a Batch "Job State Change" event.
MESSAGE_PATHS = {
    "job": f"$.detail.parameters.{JOB_ID_PARAMETER}",
    "status": "$.detail.status",
    "reason": "$.detail.statusReason",
    "batch_job": "$.detail.jobId",
}


def final_stage_pattern(final_definition_prefix: str, queue_arns: list[str], *, failed_only: bool) -> dict:
    """State changes of this stack's final-stage (merge) jobs that end a vsr job.

    ``final_definition_prefix`` is the merge job definition's ARN without its revision; the
    colon keeps ``vsr-prod-merge`` from matching a ``vsr-prod-merge2`` definition."""
    detail: dict = {
        "status": ["FAILED"] if failed_only else ["SUCCEEDED", "FAILED"],
        "jobQueue": sorted(queue_arns),
        "jobDefinition": [{"prefix": f"{final_definition_prefix}:"}],
    }
    if failed_only:  # a job the caller cancelled did not fail
        detail["statusReason"] = [{"anything-but": {"prefix": CANCEL_REASON_PREFIX}}]
    return {"source": ["aws.batch"], "detail-type": ["Batch Job State Change"], "detail": detail}


def message_template(headline: str) -> str:
    """The input transformer's template: a JSON object whose ``message`` reads as a sentence."""
    fields = {
        "message": f"vsr job <job> {headline}: <reason>",
        "job_id": "<job>",
        "status": "<status>",
        "reason": "<reason>",
        "batch_job_id": "<batch_job>",
    }
    return "{" + ", ".join(f'"{k}": "{v}"' for k, v in fields.items()) + "}"


FAILED_TEMPLATE = message_template("failed (details: GET /jobs/<job>)")
EVENT_TEMPLATE = message_template("ended <status>")


class MonitoringArgs:
    def __init__(
        self,
        *,
        settings: MonitoringSettings,
        queue_arns: list[pulumi.Input[str]],
        final_definition_prefix: pulumi.Input[str],
        function_name: pulumi.Input[str],
        rest_api_name: pulumi.Input[str],
        tags: dict[str, str],
    ) -> None:
        self.settings = settings
        self.queue_arns = queue_arns
        self.final_definition_prefix = final_definition_prefix
        self.function_name = function_name
        self.rest_api_name = rest_api_name
        self.tags = tags


class Monitoring(pulumi.ComponentResource):
    dashboard_name: pulumi.Output[str]
    alarm_topic_arn: pulumi.Output[str]
    job_events_topic_arn: pulumi.Output[str]

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vsr:monitoring:Monitoring", name, None, opts)
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        queues = pulumi.Output.all(*args.queue_arns)

        def rule_and_topic(topic_slug: str, slug: str, description: str, failed_only: bool, template: str) -> tuple:
            topic = aws.sns.Topic(f"{name}-{topic_slug}", aws.sns.TopicArgs(tags=args.tags), opts=child)
            rule = aws.cloudwatch.EventRule(
                f"{name}-{slug}",
                aws.cloudwatch.EventRuleArgs(
                    description=description,
                    event_pattern=pulumi.Output.all(args.final_definition_prefix, queues).apply(
                        lambda v: json.dumps(final_stage_pattern(v[0], list(v[1]), failed_only=failed_only))
                    ),
                    tags=args.tags,
                ),
                opts=child,
            )
            aws.cloudwatch.EventTarget(
                f"{name}-{slug}",
                aws.cloudwatch.EventTargetArgs(
                    rule=rule.name,
                    arn=topic.arn,
                    input_transformer=aws.cloudwatch.EventTargetInputTransformerArgs(
                        input_paths=MESSAGE_PATHS, input_template=template
                    ),
                ),
                opts=child,
            )
            return topic, rule

        topic, rule = rule_and_topic(
            "alarms", "failed-jobs", "vsr: jobs of this stack that failed (one per vsr job)", True, FAILED_TEMPLATE
        )
        events_topic, events_rule = rule_and_topic(
            "job-events", "job-events", "vsr: jobs of this stack that ended (one per vsr job)", False, EVENT_TEMPLATE
        )
        if s.alarm_email:
            aws.sns.TopicSubscription(
                f"{name}-alarms-email",
                aws.sns.TopicSubscriptionArgs(topic=topic.arn, protocol="email", endpoint=s.alarm_email),
                opts=child,
            )
        for slug, target, source, extra in (
            ("alarms", topic, rule, [_ALARMS_STATEMENT]),
            ("job-events", events_topic, events_rule, []),
        ):
            aws.sns.TopicPolicy(
                f"{name}-{slug}",
                aws.sns.TopicPolicyArgs(
                    arn=target.arn,
                    policy=pulumi.Output.all(target.arn, source.arn).apply(
                        lambda v, extra=extra: json.dumps(topic_policy(v[0], v[1], extra))
                    ),
                ),
                opts=child,
            )

        def alarm(
            slug: str, description: str, namespace: str, metric: str, dimensions: dict, threshold: float
        ) -> aws.cloudwatch.MetricAlarm:
            return aws.cloudwatch.MetricAlarm(
                f"{name}-{slug}",
                aws.cloudwatch.MetricAlarmArgs(
                    alarm_description=description,
                    namespace=namespace,
                    metric_name=metric,
                    dimensions=dimensions,
                    statistic="Sum",
                    period=PERIOD,
                    evaluation_periods=1,
                    threshold=threshold,
                    comparison_operator="GreaterThanOrEqualToThreshold",
                    treat_missing_data="notBreaching",
                    alarm_actions=[topic.arn],
                    ok_actions=[topic.arn],
                    tags=args.tags,
                ),
                opts=child,
            )

        alarm(
            "failed-jobs",
            "vsr: jobs failed (bad input exits 64-66 or retries exhausted; one per vsr job)",
            "AWS/Events",
            "TriggeredRules",
            {"RuleName": rule.name},
            s.failed_jobs_threshold,
        )
        alarm(
            "lambda-errors", "vsr: API Lambda errors", "AWS/Lambda", "Errors", {"FunctionName": args.function_name}, 1
        )
        alarm(
            "lambda-throttles",
            "vsr: API Lambda throttled",
            "AWS/Lambda",
            "Throttles",
            {"FunctionName": args.function_name},
            1,
        )
        alarm(
            "api-5xx",
            "vsr: API Gateway 5xx responses",
            "AWS/ApiGateway",
            "5XXError",
            {"ApiName": args.rest_api_name, "Stage": "prod"},
            1,
        )
        region = aws.get_region_output().region
        body = pulumi.Output.all(region, rule.name, args.function_name, args.rest_api_name).apply(
            lambda v: json.dumps(_dashboard(*v))
        )
        dashboard = aws.cloudwatch.Dashboard(
            name, aws.cloudwatch.DashboardArgs(dashboard_name=name, dashboard_body=body), opts=child
        )
        self.dashboard_name = dashboard.dashboard_name
        self.alarm_topic_arn = topic.arn
        self.job_events_topic_arn = events_topic.arn
        self.register_outputs(
            {
                "dashboard_name": dashboard.dashboard_name,
                "alarm_topic_arn": topic.arn,
                "job_events_topic_arn": events_topic.arn,
            }
        )


_ALARMS_STATEMENT = {
    "Sid": "Alarms",
    "Effect": "Allow",
    "Principal": {"Service": "cloudwatch.amazonaws.com"},
    "Action": "sns:Publish",
}


def topic_policy(topic_arn: str, rule_arn: str, extra: list[dict]) -> dict:
    """EventBridge may publish from its rule only; TLS only; plus ``extra`` publishers."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "JobStateEvents",
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sns:Publish",
                "Resource": topic_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
            },
            *({**st, "Resource": topic_arn} for st in extra),
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sns:Publish",
                "Resource": topic_arn,
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
        ],
    }


def _dashboard(region: str, rule: str, function: str, api: str) -> dict:
    def widget(title: str, metrics: list, x: int, y: int) -> dict:
        return {
            "type": "metric",
            "x": x,
            "y": y,
            "width": 12,
            "height": 6,
            "properties": {"title": title, "region": region, "stat": "Sum", "period": PERIOD, "metrics": metrics},
        }

    return {
        "widgets": [
            widget("Failed Batch jobs", [["AWS/Events", "TriggeredRules", "RuleName", rule]], 0, 0),
            widget(
                "API requests and errors",
                [
                    ["AWS/ApiGateway", "Count", "ApiName", api, "Stage", "prod"],
                    [".", "4XXError", ".", ".", ".", "."],
                    [".", "5XXError", ".", ".", ".", "."],
                ],
                12,
                0,
            ),
            widget(
                "Lambda",
                [
                    ["AWS/Lambda", "Invocations", "FunctionName", function],
                    [".", "Errors", ".", "."],
                    [".", "Throttles", ".", "."],
                ],
                0,
                6,
            ),
        ]
    }
