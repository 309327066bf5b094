"""HTTP routes over the request service (Powertools REST resolver, API Gateway proxy events).

Each route parses, calls the service, and returns a contract model as JSON; every error is
mapped to ``{"error": {"code", "message", "field"}}`` with its status in one place.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from pydantic import BaseModel

from vsr_api.service import JobService
from vsr_client.api_models import IDEMPOTENCY_HEADER, MAX_BODY_BYTES, ErrorBody, http_status
from vsr_client.contract import ErrorCode, VsrError

log = logging.getLogger(__name__)

# `curl -d '{...}'` without -H labels JSON as a form: accepted when the body is JSON.
_LENIENT_TYPES = ("application/x-www-form-urlencoded", "text/plain")


def _json(model: BaseModel, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=model.model_dump_json(), headers=headers
    )


def error_response(exc: VsrError, headers: dict[str, str] | None = None) -> Response:
    return _json(ErrorBody.of(exc), http_status(exc.code), headers)


class RouteTable:
    """Which methods each path answers: routes are registered through it, so a request with a
    method its path does not serve gets 405 with ``Allow`` instead of a 404."""

    def __init__(self, app: APIGatewayRestResolver) -> None:
        self.app = app
        self.methods: dict[str, set[str]] = {}

    def route(self, rule: str, *methods: str) -> Callable[[Callable], Callable]:
        served = set(methods) | ({"HEAD"} if "GET" in methods else set())
        self.methods.setdefault(rule, set()).update(served)
        return self.app.route(rule, sorted(served))

    def allowed(self, path: str) -> set[str] | None:
        """The methods ``path`` serves; None when no route has that path."""
        for rule, methods in self.methods.items():
            if re.fullmatch(re.sub(r"<\w+>", "[^/]+", rule), path):
                return methods
        return None

    def every_method(self) -> set[str]:
        return set().union(*self.methods.values())


def _header(event: dict, name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return value
    return None


def read_json_body(event: dict) -> Any:
    """The request body as JSON, after the size and content-type checks."""
    raw = event.get("body") or ""
    data = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode()
    if len(data) > MAX_BODY_BYTES:
        raise VsrError(ErrorCode.BODY_TOO_LARGE, f"request body is {len(data)} bytes; the limit is {MAX_BODY_BYTES}")
    ctype = (_header(event, "content-type") or "").split(";")[0].strip().lower()
    is_json = not ctype or ctype == "application/json" or ctype.endswith("+json")
    if not is_json and ctype not in _LENIENT_TYPES:
        raise VsrError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, f"send JSON (Content-Type: application/json), not {ctype}")
    if not data.strip():
        raise VsrError(ErrorCode.INVALID_JSON, "request body is empty; send a JSON object")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        if not is_json:
            raise VsrError(
                ErrorCode.UNSUPPORTED_MEDIA_TYPE, f"send JSON (Content-Type: application/json), not {ctype}"
            ) from None
        raise VsrError(ErrorCode.INVALID_JSON, f"request body is not valid JSON: {exc}") from None


def base_url(event: dict) -> str:
    """The API's root URL as the caller reached it (for status URLs)."""
    ctx = event.get("requestContext") or {}
    host = ctx.get("domainName") or _header(event, "host") or "localhost"
    proto = _header(event, "x-forwarded-proto") or "https"
    stage = ctx.get("stage") or ""
    # API Gateway's default execute-api domain includes the stage in the path; a custom
    # domain (mapped) or the local server does not.
    prefix = f"/{stage}" if stage and stage != "$default" and ".execute-api." in host else ""
    return f"{proto}://{host}{prefix}"


def build_app(service: JobService) -> APIGatewayRestResolver:
    app = APIGatewayRestResolver(strip_prefixes=None)
    table = RouteTable(app)

    def submit() -> Response:
        event = app.current_event.raw_event
        body = read_json_body(event)
        header_key = _header(event, IDEMPOTENCY_HEADER)
        if header_key and isinstance(body, dict) and "idempotency_key" not in body:
            body = {**body, "idempotency_key": header_key}
        result = service.submit(body, base_url(event))
        if result.replay:
            return _json(result.accepted, 200)
        # 202 Accepted names where the job's status is (RFC 9110, 15.3.3).
        return _json(result.accepted, 202, {"Location": result.accepted.status_url})

    table.route("/", "POST")(submit)
    table.route("/jobs", "POST")(submit)

    @table.route("/jobs", "GET")
    def list_jobs() -> Response:
        raw = app.current_event.get_query_string_value("limit", "20") or "20"
        try:
            limit = int(raw)
        except ValueError:
            raise VsrError(ErrorCode.INVALID_ARGUMENT, f"limit must be an integer, got {raw!r}", "limit") from None
        return _json(service.list_jobs(limit))

    @table.route("/jobs/<job_id>", "GET")
    def get_job(job_id: str) -> Response:
        return _json(service.status(job_id))

    @table.route("/jobs/<job_id>", "DELETE")
    def cancel_job(job_id: str) -> Response:
        return _json(service.cancel(job_id))

    @table.route("/uploads", "POST")
    def create_upload() -> Response:
        return _json(service.upload(read_json_body(app.current_event.raw_event)), 201)

    @app.exception_handler(VsrError)
    def on_user_error(exc: VsrError) -> Response:
        status = http_status(exc.code)
        (log.error if status >= 500 else log.info)(
            "request failed", extra={"code": exc.code.value, "status": status, "error": exc.message}
        )
        return error_response(exc)

    @app.not_found
    def on_not_found(_exc: Exception) -> Response:
        event = app.current_event.raw_event
        method, path = str(event.get("httpMethod")), str(event.get("path"))
        allowed = table.allowed(path)
        if allowed is None and method in table.every_method():
            return error_response(VsrError(ErrorCode.ROUTE_NOT_FOUND, f"no route {method} {path!r}"))
        # A method this path does not serve, or one the API serves nowhere (PATCH, OPTIONS, TRACE...).
        allow = ", ".join(sorted(allowed if allowed is not None else table.every_method()))
        return error_response(
            VsrError(ErrorCode.METHOD_NOT_ALLOWED, f"{method} is not allowed here; use {allow}"), {"Allow": allow}
        )

    @app.exception_handler(Exception)
    def on_internal(exc: Exception) -> Response:
        log.exception("internal error")
        return error_response(VsrError(ErrorCode.INTERNAL, f"internal error ({type(exc).__name__})"))

    return app
