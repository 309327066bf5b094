"""DynamoDB: the job table (``job_id`` key, TTL on ``expires_at``, on-demand billing)."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from stack.settings import DatabaseSettings

PARTITION_KEY = "job_id"
TTL_ATTRIBUTE = "expires_at"


class JobTableArgs:
    def __init__(self, *, settings: DatabaseSettings, tags: dict[str, str]) -> None:
        self.settings = settings
        self.tags = tags


class JobTable(pulumi.ComponentResource):
    table_name: pulumi.Output[str]
    table_arn: pulumi.Output[str]

    def __init__(self, name: str, args: JobTableArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vsr:database:JobTable", name, None, opts)
        s = args.settings
        table = aws.dynamodb.Table(
            name,
            aws.dynamodb.TableArgs(
                billing_mode="PAY_PER_REQUEST",
                hash_key=PARTITION_KEY,
                attributes=[aws.dynamodb.TableAttributeArgs(name=PARTITION_KEY, type="S")],
                ttl=aws.dynamodb.TableTtlArgs(attribute_name=TTL_ATTRIBUTE, enabled=True),
                point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=s.point_in_time_recovery),
                server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(enabled=True),
                deletion_protection_enabled=s.deletion_protection,
                tags=args.tags,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.table_name = table.name
        self.table_arn = table.arn
        self.register_outputs({"table_name": table.name, "table_arn": table.arn})
