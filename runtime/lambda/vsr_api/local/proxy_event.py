"""HTTP requests as API Gateway REST proxy events, and proxy responses back (local server)."""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit


@dataclass
class LocalContext:
    """Enough of a Lambda context for Powertools' logger."""

    function_name: str = "vsr-api-local"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:local:000000000000:function:vsr-api-local"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def to_event(method: str, target: str, headers: dict[str, str], body: bytes, host: str, source_ip: str) -> dict:
    parts = urlsplit(target)
    query = parse_qs(parts.query, keep_blank_values=True)
    try:
        text, b64 = body.decode(), False
    except UnicodeDecodeError:
        text, b64 = base64.b64encode(body).decode(), True
    return {
        "resource": "/{proxy+}",
        "path": parts.path or "/",
        "httpMethod": method,
        "headers": dict(headers),
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": {"proxy": (parts.path or "/").lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": parts.path or "/",
            "stage": "local",
            "domainName": host,
            "requestId": secrets.token_hex(8),
            "requestTimeEpoch": int(time.time() * 1000),
            "identity": {"sourceIp": source_ip},
        },
        "body": text if body else None,
        "isBase64Encoded": b64,
    }


def response_body(response: dict) -> bytes:
    body = response.get("body") or ""
    return base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()
