"""S3: one private, encrypted, TLS-only bucket with inputs/, outputs/ and jobs/<id>/ prefixes."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws

# pulumi-aws 7 does not re-export this resource from aws.s3 (its Args name clashes with the
# Bucket property type aws.s3.BucketServerSideEncryptionConfigurationArgs): import it directly.
from pulumi_aws.s3.bucket_server_side_encryption_configuration import (
    BucketServerSideEncryptionConfiguration,
    BucketServerSideEncryptionConfigurationInitArgs,
)

from stack.settings import StorageSettings


def tls_only_policy(bucket_arn: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, f"{bucket_arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
            {
                "Sid": "DenyOldTls",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, f"{bucket_arn}/*"],
                "Condition": {"NumericLessThan": {"s3:TlsVersion": "1.2"}},
            },
        ],
    }


class StorageArgs:
    def __init__(self, *, settings: StorageSettings, tags: dict[str, str]) -> None:
        self.settings = settings
        self.tags = tags


class Storage(pulumi.ComponentResource):
    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]

    def __init__(self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vsr:storage:Bucket", name, None, opts)
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        bucket = aws.s3.Bucket(name, aws.s3.BucketArgs(force_destroy=s.force_destroy, tags=args.tags), opts=child)
        block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            aws.s3.BucketPublicAccessBlockArgs(
                bucket=bucket.id,
                block_public_acls=True,
                block_public_policy=True,
                ignore_public_acls=True,
                restrict_public_buckets=True,
            ),
            opts=child,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            aws.s3.BucketOwnershipControlsArgs(
                bucket=bucket.id,
                rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            ),
            opts=child,
        )
        BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            BucketServerSideEncryptionConfigurationInitArgs(
                bucket=bucket.id,
                rules=[
                    aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                        apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                            sse_algorithm="AES256"
                        ),
                        bucket_key_enabled=True,
                    )
                ],
            ),
            opts=child,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            aws.s3.BucketLifecycleConfigurationArgs(bucket=bucket.id, rules=_lifecycle_rules(s)),
            opts=child,
        )
        aws.s3.BucketPolicy(
            f"{name}-tls-only",
            aws.s3.BucketPolicyArgs(
                bucket=bucket.id, policy=bucket.arn.apply(lambda arn: json.dumps(tls_only_policy(arn)))
            ),
            # S3 rejects policies while the public access block is being changed.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[block]),
        )
        self.bucket_name = bucket.bucket
        self.bucket_arn = bucket.arn
        self.register_outputs({"bucket_name": bucket.bucket, "bucket_arn": bucket.arn})


def _lifecycle_rules(s: StorageSettings) -> list[aws.s3.BucketLifecycleConfigurationRuleArgs]:
    def expire(rule_id: str, prefix: str, days: int) -> aws.s3.BucketLifecycleConfigurationRuleArgs:
        return aws.s3.BucketLifecycleConfigurationRuleArgs(
            id=rule_id,
            status="Enabled",
            filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=prefix),
            expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=days),
        )

    rules = [
        expire("expire-intermediates", s.work_prefix, s.work_expiry_days),
        aws.s3.BucketLifecycleConfigurationRuleArgs(
            id="abort-incomplete-multipart-uploads",
            status="Enabled",
            filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
            abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                days_after_initiation=s.abort_multipart_days
            ),
        ),
    ]
    if s.input_expiry_days:
        rules.append(expire("expire-inputs", s.input_prefix, s.input_expiry_days))
    if s.output_expiry_days:
        rules.append(expire("expire-outputs", s.output_prefix, s.output_expiry_days))
    return rules
