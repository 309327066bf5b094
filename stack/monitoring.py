"""CloudWatch: alarms on failed Batch jobs, Lambda errors and API 5xx; one dashboard.

Batch publishes no failed-job metric: an EventBridge rule matches this stack's FAILED job
state changes, forwards them to the alarm topic (the event names the job), and the rule's
``TriggeredRules`` metric drives the alarm. The topic is not KMS-encrypted because
EventBridge and CloudWatch cannot publish to a topic under the AWS-managed SNS key; it
carries job ids and alarm states, no video data.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from stack.settings import MonitoringSettings

PERIOD = 300


def failed_jobs_pattern(queue_arns: list[str]) -> str:
    return json.dumps(
        {
            "source": ["aws.batch"],
            "detail-type": ["Batch Job State Change"],
            "detail": {"status": ["FAILED"], "jobQueue": queue_arns},
        }
    )


class MonitoringArgs:
    def __init__(
        self,
        *,
        settings: MonitoringSettings,
        queue_arns: list[pulumi.Input[str]],
        function_name: pulumi.Input[str],
        rest_api_name: pulumi.Input[str],
        tags: dict[str, str],
    ) -> None:
        self.settings = settings
        self.queue_arns = queue_arns
        self.function_name = function_name
        self.rest_api_name = rest_api_name
        self.tags = tags


class Monitoring(pulumi.ComponentResource):
    dashboard_name: pulumi.Output[str]
    alarm_topic_arn: pulumi.Output[str]

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vsr:monitoring:Monitoring", name, None, opts)
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        topic = aws.sns.Topic(f"{name}-alarms", aws.sns.TopicArgs(tags=args.tags), opts=child)
        if s.alarm_email:
            aws.sns.TopicSubscription(
                f"{name}-alarms-email",
                aws.sns.TopicSubscriptionArgs(topic=topic.arn, protocol="email", endpoint=s.alarm_email),
                opts=child,
            )
        rule = aws.cloudwatch.EventRule(
            f"{name}-failed-jobs",
            aws.cloudwatch.EventRuleArgs(
                description="vsr: Batch jobs of this stack that FAILED",
                event_pattern=pulumi.Output.all(*args.queue_arns).apply(lambda arns: failed_jobs_pattern(list(arns))),
                tags=args.tags,
            ),
            opts=child,
        )
        aws.sns.TopicPolicy(
            f"{name}-alarms",
            aws.sns.TopicPolicyArgs(
                arn=topic.arn,
                policy=pulumi.Output.all(topic.arn, rule.arn).apply(
                    lambda v: json.dumps(
                        {
                            "Version": "2012-10-17",
                            "Statement": [
                                {
                                    "Sid": "FailedJobEvents",
                                    "Effect": "Allow",
                                    "Principal": {"Service": "events.amazonaws.com"},
                                    "Action": "sns:Publish",
                                    "Resource": v[0],
                                    "Condition": {"ArnEquals": {"aws:SourceArn": v[1]}},
                                },
                                {
                                    "Sid": "Alarms",
                                    "Effect": "Allow",
                                    "Principal": {"Service": "cloudwatch.amazonaws.com"},
                                    "Action": "sns:Publish",
                                    "Resource": v[0],
                                },
                                {
                                    "Sid": "DenyInsecureTransport",
                                    "Effect": "Deny",
                                    "Principal": "*",
                                    "Action": "sns:Publish",
                                    "Resource": v[0],
                                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                                },
                            ],
                        }
                    )
                ),
            ),
            opts=child,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-failed-jobs",
            aws.cloudwatch.EventTargetArgs(rule=rule.name, arn=topic.arn),
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
            "vsr: Batch jobs failed (bad input exits 64-66 or retries exhausted)",
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
        self.register_outputs({"dashboard_name": dashboard.dashboard_name, "alarm_topic_arn": topic.arn})


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
