"""IAM: least-privilege roles for the Batch instances, the worker jobs and the Lambda.

Policy documents are built by pure functions from resolved ARNs; the tests evaluate them
against every AWS call the Lambda and the worker make in the moto end-to-end runs
(tests/iam_eval.py, tests/test_cloud_e2e.py), so each grant below is one the code uses, and
each comment says which call needs it. No statement grants data (S3, DynamoDB) or Batch
submit/terminate actions on ``Resource: "*"``; the only ``"*"`` statement is for actions that
have no resource-level permissions at all (:data:`RESOURCELESS_ACTIONS`).
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws

from vsr_client.jobgraph import STACK_TAG

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


def _objects(bucket_arn: str, prefix: str = "") -> str:
    return f"{bucket_arn}/{prefix}*"


def _read_objects(bucket_arn: str) -> dict[str, Any]:
    """GetObject (and HeadObject, which S3 authorizes as GetObject) anywhere in the bucket:
    sources may be any key outside the service's own prefixes (the API checks which), and both
    roles read job files under the work prefix."""
    return {"Sid": "ReadObjects", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [_objects(bucket_arn)]}


def _list_bucket(bucket_arn: str) -> dict[str, Any]:
    """ListBucket on this bucket only, with no prefix condition: the stages list a job's parts
    and the API a job's progress records (ListObjectsV2), and S3 answers a HeadObject of a
    missing key with 404 only to callers allowed to list the bucket (403 otherwise), which the
    stages' existence checks rely on. It reveals key names in this bucket, no data."""
    return {"Sid": "ListOwnBucket", "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [bucket_arn]}


def worker_policy(bucket_arn: str, work_prefix: str, output_prefix: str) -> dict[str, Any]:
    """The worker job role: read the bucket; write job files and results; nothing else."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            _read_objects(bucket_arn),
            {
                # Put: chunks, checkpoint parts, progress records, logs. Delete: a finished
                # inference job removes its chunks and parts (DeleteObjects authorizes as
                # DeleteObject per key). Abort: s3transfer aborts a failed multipart upload
                # (files over 16 MiB; the tests' videos are smaller, see tests/iam_eval.py).
                "Sid": "WriteJobFiles",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                "Resource": [_objects(bucket_arn, work_prefix)],
            },
            {
                # Merge writes the result; a retried merge checks (HeadObject: ReadObjects)
                # whether it exists. Results are never deleted by the service.
                "Sid": "WriteResults",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
                "Resource": [_objects(bucket_arn, output_prefix)],
            },
            _list_bucket(bucket_arn),
        ],
    }


def lambda_policy(
    *,
    stack: str,
    bucket_arn: str,
    output_prefix: str,
    table_arn: str,
    queue_arns: list[str],
    job_definition_arn_prefixes: list[str],
    job_arn_pattern: str,
    log_group_arn: str,
) -> dict[str, Any]:
    """The API Lambda: submit to this stack's queues and definitions, stop only this stack's
    jobs, read and upload objects, keep job records, write its logs."""
    job_definitions = [p for prefix in job_definition_arn_prefixes for p in (prefix, f"{prefix}:*")]
    own_tag = {f"aws:RequestTag/{STACK_TAG}": stack}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                # SubmitJob is authorized on the queue and the job definition it names ...
                "Sid": "SubmitToOwnQueuesAndDefinitions",
                "Effect": "Allow",
                "Action": ["batch:SubmitJob"],
                "Resource": [*queue_arns, *job_definitions],
            },
            {
                # ... and on the job it creates (a required resource type of SubmitJob in the
                # IAM reference), which carries tags: tag-on-create also needs TagResource on
                # it. Both only for jobs tagged with this stack's name, which StopOwnJobs keys
                # on. (Batch has no condition key that limits TagResource to tag-on-create.)
                "Sid": "CreateTaggedJobs",
                "Effect": "Allow",
                "Action": ["batch:SubmitJob", "batch:TagResource"],
                "Resource": [job_arn_pattern],
                "Condition": {"StringEquals": own_tag},
            },
            {
                # Job ARNs carry no queue: the tag set at submit is what marks this stack's jobs.
                # The API only terminates (never CancelJob) the jobs it recorded.
                "Sid": "StopOwnJobs",
                "Effect": "Allow",
                "Action": ["batch:TerminateJob"],
                "Resource": [job_arn_pattern],
                "Condition": {"StringEquals": {f"aws:ResourceTag/{STACK_TAG}": stack}},
            },
            {
                "Sid": "ReadJobStatus",
                "Effect": "Allow",
                "Action": sorted(RESOURCELESS_ACTIONS),
                "Resource": "*",
            },
            # Probe a source (HeadObject, ranged GETs), read progress records and result.json,
            # and sign download URLs for results (a presigned URL acts with this role's rights).
            _read_objects(bucket_arn),
            {
                # Manifests (jobs/<id>/manifest.json) and presigned uploads to any source key:
                # PUT, or a multipart upload (create/part/complete authorize as PutObject) that
                # the client may abort. IAM cannot carve jobs/*/manifest.json out of jobs/*, so
                # the API's key check (403 key_reserved) keeps uploads out of the work prefix.
                "Sid": "UploadsAndManifests",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
                "Resource": [_objects(bucket_arn)],
            },
            {
                # Results are the worker's: no URL this role signs may write one.
                "Sid": "NeverWriteResults",
                "Effect": "Deny",
                "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
                "Resource": [_objects(bucket_arn, output_prefix)],
            },
            _list_bucket(bucket_arn),
            {
                # Get/Put: job records and idempotency claims (a conditional put). Scan: GET
                # /jobs. Delete: a claim released when its submit fails.
                "Sid": "JobTable",
                "Effect": "Allow",
                "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Scan"],
                "Resource": [table_arn],
            },
            {
                # The Lambda runtime's own log writes (not a call of the handler's code).
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
        work_prefix: str,
        output_prefix: str,
        tags: dict[str, str],
    ) -> None:
        self.bucket_arn = bucket_arn
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
                    lambda arn: json.dumps(worker_policy(arn, args.work_prefix, args.output_prefix))
                ),
            ),
            opts=child,
        )
        self.instance_profile_arn = profile.arn
        self.job_role_arn = job_role.arn
        self.register_outputs({"instance_profile_arn": profile.arn, "job_role_arn": job_role.arn})
