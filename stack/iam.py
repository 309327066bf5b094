"""IAM: least-privilege roles for the Batch instances, the worker jobs and the Lambda.

Policy documents are built by pure functions (tested on their own) from resolved ARNs. No
statement grants data (S3, DynamoDB) or Batch submit/terminate actions on ``Resource: "*"``.
The only ``"*"`` statements are for actions that have no resource-level permissions at all
(listed in :data:`RESOURCELESS_ACTIONS`).
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws

# batch:DescribeJobs and batch:ListJobs support no resource-level permissions (the IAM service
# authorization reference lists no resource type for them), so "*" is the only valid resource.
# They are read-only and reveal job metadata of this account and region only.
RESOURCELESS_ACTIONS = frozenset({"batch:DescribeJobs", "batch:ListJobs"})

ECS_INSTANCE_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"


def assume_role_policy(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
        }
    )


def _objects(bucket_arn: str, prefix: str) -> str:
    return f"{bucket_arn}/{prefix}*"


def worker_policy(bucket_arn: str, input_prefix: str, work_prefix: str, output_prefix: str) -> dict[str, Any]:
    """The worker job role: inputs/ read, jobs/ read-write, outputs/ write; nothing else."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadInputs",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": [_objects(bucket_arn, input_prefix)],
            },
            {
                "Sid": "ReadWriteIntermediates",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                "Resource": [_objects(bucket_arn, work_prefix)],
            },
            {
                # Get: a retried merge checks (HeadObject) whether its output already exists.
                "Sid": "WriteOutputs",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:AbortMultipartUpload", "s3:GetObject"],
                "Resource": [_objects(bucket_arn, output_prefix)],
            },
            _list_bucket(bucket_arn),
        ],
    }


def _list_bucket(bucket_arn: str) -> dict[str, Any]:
    """ListBucket on this bucket only, with no prefix condition: S3 answers a HeadObject of a
    missing key with 404 only to callers allowed to list the bucket (403 otherwise), and the
    stages' existence checks rely on that. It reveals key names in this bucket, no data."""
    return {"Sid": "ListOwnBucket", "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [bucket_arn]}


def lambda_policy(
    *,
    bucket_arn: str,
    input_prefix: str,
    work_prefix: str,
    output_prefix: str,
    table_arn: str,
    queue_arns: list[str],
    job_definition_arn_prefixes: list[str],
    job_arn_pattern: str,
    log_group_arn: str,
) -> dict[str, Any]:
    """The API Lambda: submit to this stack's queues and job definitions, its prefixes, its table."""
    job_definitions = [p for prefix in job_definition_arn_prefixes for p in (prefix, f"{prefix}:*")]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "SubmitToOwnQueuesAndDefinitions",
                "Effect": "Allow",
                "Action": ["batch:SubmitJob"],
                "Resource": [*queue_arns, *job_definitions],
            },
            {
                # Cancel/Terminate accept only job ARNs, which carry no queue: they are scoped to
                # jobs of this account and region (the Lambda only cancels jobs it recorded).
                "Sid": "StopJobs",
                "Effect": "Allow",
                "Action": ["batch:CancelJob", "batch:TerminateJob"],
                "Resource": [job_arn_pattern],
            },
            {
                "Sid": "ReadJobStatus",
                "Effect": "Allow",
                "Action": sorted(RESOURCELESS_ACTIONS),
                "Resource": "*",
            },
            {
                "Sid": "Uploads",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                "Resource": [_objects(bucket_arn, input_prefix)],
            },
            {
                "Sid": "Manifests",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"],
                "Resource": [_objects(bucket_arn, work_prefix)],
            },
            {
                "Sid": "Results",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:DeleteObject"],
                "Resource": [_objects(bucket_arn, output_prefix)],
            },
            _list_bucket(bucket_arn),
            {
                "Sid": "JobTable",
                "Effect": "Allow",
                "Action": [
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem",
                    "dynamodb:Query",
                    "dynamodb:Scan",
                    "dynamodb:ConditionCheckItem",
                ],
                "Resource": [table_arn, f"{table_arn}/index/*"],
            },
            {
                "Sid": "OwnLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": [f"{log_group_arn}:*"],
            },
        ],
    }


class BatchRolesArgs:
    def __init__(
        self,
        *,
        bucket_arn: pulumi.Input[str],
        input_prefix: str,
        work_prefix: str,
        output_prefix: str,
        tags: dict[str, str],
    ) -> None:
        self.bucket_arn = bucket_arn
        self.input_prefix = input_prefix
        self.work_prefix = work_prefix
        self.output_prefix = output_prefix
        self.tags = tags


class BatchRoles(pulumi.ComponentResource):
    """The Batch instance role (ECS agent, image pulls, logs) and the worker job role (S3 only).

    Batch itself uses its service-linked role (AWSServiceRoleForBatch), which AWS creates on
    first use; the spot allocation strategies offered need no spot fleet role.
    """

    instance_profile_arn: pulumi.Output[str]
    job_role_arn: pulumi.Output[str]

    def __init__(self, name: str, args: BatchRolesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vsr:iam:BatchRoles", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        instance_role = aws.iam.Role(
            f"{name}-instance",
            aws.iam.RoleArgs(
                assume_role_policy=assume_role_policy("ec2.amazonaws.com"),
                description="Batch container instances: ECS agent, ECR pulls, CloudWatch Logs",
                tags=args.tags,
            ),
            opts=child,
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-instance-ecs",
            aws.iam.RolePolicyAttachmentArgs(role=instance_role.name, policy_arn=ECS_INSTANCE_POLICY),
            opts=child,
        )
        profile = aws.iam.InstanceProfile(
            f"{name}-instance", aws.iam.InstanceProfileArgs(role=instance_role.name, tags=args.tags), opts=child
        )
        job_role = aws.iam.Role(
            f"{name}-job",
            aws.iam.RoleArgs(
                assume_role_policy=assume_role_policy("ecs-tasks.amazonaws.com"),
                description="vsr worker jobs: this stack's bucket prefixes only",
                tags=args.tags,
            ),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-job-s3",
            aws.iam.RolePolicyArgs(
                role=job_role.id,
                policy=pulumi.Output.from_input(args.bucket_arn).apply(
                    lambda arn: json.dumps(worker_policy(arn, args.input_prefix, args.work_prefix, args.output_prefix))
                ),
            ),
            opts=child,
        )
        self.instance_profile_arn = profile.arn
        self.job_role_arn = job_role.arn
        self.register_outputs({"instance_profile_arn": profile.arn, "job_role_arn": job_role.arn})
