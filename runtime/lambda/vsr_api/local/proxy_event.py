"""HTTP requests as API Gateway REST proxy events, and proxy responses back (local server)."""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qs


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


def to_event(
    method: str,
    path: str,
    query: str,
    headers: list[tuple[str, str]],
    body: bytes,
    host: str,
    source_ip: str,
) -> dict:
    """The event API Gateway's ``/{proxy+}`` resource would hand the Lambda for this request.

    ``headers`` keeps repeated names (``multiValueHeaders``); ``headers`` joins them with commas,
    as API Gateway does.
    """
    parsed = parse_qs(query, keep_blank_values=True)
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in headers:
        multi.setdefault(name, []).append(value)
        single[name] = ",".join(multi[name])
    try:
        text, b64 = body.decode(), False
    except UnicodeDecodeError:
        text, b64 = base64.b64encode(body).decode(), True
    path = path or "/"
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": single,
        "multiValueHeaders": multi,
        "queryStringParameters": {k: v[-1] for k, v in parsed.items()} or None,
        "multiValueQueryStringParameters": parsed or None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": path,
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


def response_headers(response: dict) -> list[tuple[str, str]]:
    """Every header of a proxy response, repeated names kept (``multiValueHeaders`` wins)."""
    multi = {k.lower(): (k, v) for k, v in (response.get("multiValueHeaders") or {}).items()}
    out = [(name, str(value)) for name, values in multi.values() for value in values]
    out += [(k, str(v)) for k, v in (response.get("headers") or {}).items() if k.lower() not in multi]
    return out
