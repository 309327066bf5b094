"""Storage port over S3: heads, ranged reads, JSON documents, presigned transfers."""

from __future__ import annotations

import json
import math
from typing import Any

from botocore.exceptions import ClientError

from vsr_api.adapters.ranged_reader import RangedReader
from vsr_api.ports import ObjectInfo
from vsr_client.api_models import UploadPart, UploadTarget

MULTIPART_THRESHOLD = 100 * 1024**2
MIN_PART_SIZE = 64 * 1024**2
MAX_PARTS = 10_000


def part_size_for(size: int) -> int:
    """Parts of at least 64 MiB, few enough for S3's 10,000-part limit."""
    return max(MIN_PART_SIZE, math.ceil(size / MAX_PARTS))


class S3Storage:
    def __init__(self, s3: Any, bucket: str) -> None:
        self.s3 = s3
        self.bucket = bucket

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def head(self, key: str) -> ObjectInfo | None:
        try:
            meta = self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            # 403 is what S3 answers for a missing key when the caller may not list the bucket.
            if exc.response.get("Error", {}).get("Code") in ("404", "403", "NoSuchKey", "NotFound"):
                return None
            raise
        return ObjectInfo(key=key, size=int(meta["ContentLength"]))

    def open_ranged(self, obj: ObjectInfo) -> RangedReader:
        def fetch(start: int, end: int) -> bytes:
            resp = self.s3.get_object(Bucket=self.bucket, Key=obj.key, Range=f"bytes={start}-{end}")
            return resp["Body"].read()

        return RangedReader(fetch, obj.size)

    def put_json(self, key: str, data: object) -> None:
        body = (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")

    def read_json(self, key: str) -> dict | None:
        try:
            return json.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "403", "NoSuchKey"):
                return None
            raise

    def read_json_under(self, prefix: str) -> list[dict]:
        out = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                if item["Key"].endswith(".json"):
                    try:
                        out.append(json.loads(self.s3.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()))
                    except (ClientError, ValueError):
                        continue
        return out

    def download_url(self, key: str, expires: int = 3600) -> str:
        return self.s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires
        )

    def upload_target(self, key: str, size: int | None, content_type: str, expires: int = 3600) -> UploadTarget:
        if size is None or size <= MULTIPART_THRESHOLD:
            url = self.s3.generate_presigned_url(
                "put_object",
                Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type},
                ExpiresIn=expires,
            )
            return UploadTarget(key=key, url=url, headers={"Content-Type": content_type}, expires_in=expires)
        upload_id = self.s3.create_multipart_upload(Bucket=self.bucket, Key=key, ContentType=content_type)["UploadId"]
        part_size = part_size_for(size)
        count = math.ceil(size / part_size)
        common = {"Bucket": self.bucket, "Key": key, "UploadId": upload_id}
        parts = [
            UploadPart(
                part_number=n,
                url=self.s3.generate_presigned_url(
                    "upload_part", Params={**common, "PartNumber": n}, ExpiresIn=expires
                ),
            )
            for n in range(1, count + 1)
        ]
        return UploadTarget(
            key=key,
            upload_id=upload_id,
            part_size=part_size,
            parts=parts,
            complete_url=self.s3.generate_presigned_url(
                "complete_multipart_upload", Params=common, ExpiresIn=expires, HttpMethod="POST"
            ),
            abort_url=self.s3.generate_presigned_url(
                "abort_multipart_upload", Params=common, ExpiresIn=expires, HttpMethod="DELETE"
            ),
            expires_in=expires,
        )
