"""Job store over DynamoDB: one item per job (hash key ``job_id``), plus one per claim.

Idempotency items use the key ``idem#<sha256(idempotency key)>`` and output claims
``out#<sha256(output key)>`` in the same table; both are taken with a conditional put, so two
concurrent submits with one idempotency key make one job, and two jobs never write one output.
Every item carries ``expires_at`` (epoch seconds) for the table's TTL.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from botocore.exceptions import ClientError

from vsr_api.job_record import JobRecord

_IDEM = "idem#"
_OUTPUT = "out#"


def _idem_id(key: str) -> str:
    return _IDEM + hashlib.sha256(key.encode()).hexdigest()


def _output_id(key: str) -> str:
    return _OUTPUT + hashlib.sha256(key.encode()).hexdigest()


def _conditional_failed(exc: ClientError) -> bool:
    return exc.response["Error"]["Code"] == "ConditionalCheckFailedException"


class DynamoJobStore:
    def __init__(self, dynamodb: Any, table: str, ttl_days: int = 30) -> None:
        self.db = dynamodb
        self.table = table
        self.ttl_days = ttl_days

    def get(self, job_id: str) -> JobRecord | None:
        item = self.db.get_item(TableName=self.table, Key={"job_id": {"S": job_id}}, ConsistentRead=True).get("Item")
        if not item or "record" not in item:
            return None
        return JobRecord.model_validate_json(item["record"]["S"])

    def put(self, record: JobRecord) -> None:
        self.db.put_item(
            TableName=self.table,
            Item={
                "job_id": {"S": record.job_id},
                "kind": {"S": "job"},
                "created_at": {"S": record.created_at.isoformat()},
                "state": {"S": record.state},
                "expires_at": {"N": str(record.expires_at)},
                "record": {"S": record.model_dump_json()},
            },
        )

    def list_recent(self, limit: int) -> list[JobRecord]:
        records: list[JobRecord] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": "#k = :job",
            "ExpressionAttributeNames": {"#k": "kind"},
            "ExpressionAttributeValues": {":job": {"S": "job"}},
        }
        while True:
            page = self.db.scan(**kwargs)
            records += [JobRecord.model_validate_json(i["record"]["S"]) for i in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        records.sort(key=lambda r: r.created_at, reverse=True)
        return records[:limit]

    def claim_idempotency(self, idempotency_key: str, job_id: str, request_hash: str) -> tuple[str, str] | None:
        item = {
            "job_id": {"S": _idem_id(idempotency_key)},
            "kind": {"S": "idempotency"},
            "target": {"S": job_id},
            "request_hash": {"S": request_hash},
            "expires_at": {"N": str(int(time.time()) + self.ttl_days * 86400)},
        }
        try:
            self.db.put_item(TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(job_id)")
            return None
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
        held = self.db.get_item(
            TableName=self.table, Key={"job_id": {"S": _idem_id(idempotency_key)}}, ConsistentRead=True
        )["Item"]
        return held["target"]["S"], held["request_hash"]["S"]

    def release_idempotency(self, idempotency_key: str) -> None:
        self.db.delete_item(TableName=self.table, Key={"job_id": {"S": _idem_id(idempotency_key)}})

    def claim_output(self, output_key: str, job_id: str) -> str | None:
        item = {
            "job_id": {"S": _output_id(output_key)},
            "kind": {"S": "output"},
            "target": {"S": job_id},
            "output_key": {"S": output_key},
            "expires_at": {"N": str(int(time.time()) + self.ttl_days * 86400)},
        }
        try:
            self.db.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression="attribute_not_exists(job_id) OR target = :me",
                ExpressionAttributeValues={":me": {"S": job_id}},
            )
            return None
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
        key = {"job_id": {"S": _output_id(output_key)}}
        held = self.db.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item", {})
        return held.get("target", {}).get("S", "")

    def release_output(self, output_key: str, job_id: str) -> None:
        try:
            self.db.delete_item(
                TableName=self.table,
                Key={"job_id": {"S": _output_id(output_key)}},
                ConditionExpression="target = :me",
                ExpressionAttributeValues={":me": {"S": job_id}},
            )
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
