"""The HTTP API's OpenAPI 3.1 document, generated from the contract's models and route list.

Nothing here is written by hand but the route list and its one-line summaries: schemas come
from the pydantic models (``api_models``), error codes and statuses from ``HTTP_STATUS``.
``scripts/export_openapi.py`` writes it to docs/openapi.json (a test fails when that copy is
stale), and the Lambda's routes are checked against ``ROUTES`` by a test, so the document
cannot drift from what the handler serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from vsr_client.api_models import (
    API_KEY_HEADER,
    HTTP_STATUS,
    IDEMPOTENCY_HEADER,
    ErrorBody,
    JobAccepted,
    JobList,
    JobStatus,
    SubmitRequest,
    UploadRequest,
    UploadTarget,
)

OPENAPI_VERSION = "3.1.0"
REF = "#/components/schemas/{model}"
Method = Literal["get", "post", "delete"]
Refs = dict[Any, dict[str, Any]]  # (model, mode) -> {"$ref": ...}


@dataclass(frozen=True)
class Route:
    """One operation: what it takes, what it answers on success, and which error statuses."""

    method: Method
    path: str
    operation_id: str
    summary: str
    response: type[BaseModel]
    status: int
    errors: tuple[int, ...]
    request: type[BaseModel] | None = None


_SUBMIT_ERRORS = (400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 502)
ROUTES: tuple[Route, ...] = (
    Route("post", "/", "submitJobAtRoot", "Submit a job (the seed's request, at the stage root)", JobAccepted, 202,
          _SUBMIT_ERRORS, SubmitRequest),
    Route("post", "/jobs", "submitJob", "Submit a job", JobAccepted, 202, _SUBMIT_ERRORS, SubmitRequest),
    Route("get", "/jobs", "listJobs", "The most recent jobs, newest first", JobList, 200, (400, 401, 429, 500)),
    Route("get", "/jobs/{job_id}", "getJob", "A job's status, progress and download URL", JobStatus, 200,
          (401, 404, 429, 500)),
    Route("delete", "/jobs/{job_id}", "cancelJob", "Cancel a job", JobStatus, 200, (401, 404, 409, 429, 500)),
    Route("post", "/uploads", "createUpload", "A presigned upload (single PUT or multipart)", UploadTarget, 201,
          (400, 401, 403, 413, 415, 429, 500), UploadRequest),
)  # fmt: skip


def _schemas() -> tuple[Refs, dict[str, Any]]:
    """Request bodies as validated, answers as serialised; one component per model."""
    pairs: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorBody, "serialization")]
    for route in ROUTES:
        if route.request is not None and (route.request, "validation") not in pairs:
            pairs.append((route.request, "validation"))
        if (route.response, "serialization") not in pairs:
            pairs.append((route.response, "serialization"))
    refs, defs = models_json_schema(pairs, ref_template=REF)
    return dict(refs), defs.get("$defs", {})


def _error_codes(status: int) -> list[str]:
    return sorted(code.value for code, value in HTTP_STATUS.items() if value == status)


def _json(ref: Any) -> dict[str, Any]:
    return {"application/json": {"schema": ref}}


def _operation(route: Route, refs: Refs) -> dict[str, Any]:
    error_ref = refs[(ErrorBody, "serialization")]
    success: dict[str, Any] = {"description": route.summary, "content": _json(refs[(route.response, "serialization")])}
    responses: dict[str, Any] = {str(route.status): success}
    parameters: list[dict[str, Any]] = []
    if route.response is JobAccepted:
        success["description"] = "accepted: the job is queued"
        success["headers"] = {
            "Location": {"description": "the job's status URL (also status_url)", "schema": {"type": "string"}}
        }
        responses["200"] = {
            "description": "an idempotent replay: the job this idempotency key already created",
            "content": _json(refs[(route.response, "serialization")]),
        }
        parameters.append(
            {
                "name": IDEMPOTENCY_HEADER,
                "in": "header",
                "required": False,
                "description": "same as the body's idempotency_key (the body wins)",
                "schema": {"type": "string", "minLength": 1, "maxLength": 128},
            }
        )
    for status in route.errors:
        codes = _error_codes(status)
        text = f"error codes: {', '.join(codes)}" if codes else "API Gateway's own answer"
        responses[str(status)] = {"description": text, "content": _json(error_ref)}
    if "{job_id}" in route.path:
        parameters.append({"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}})
    if route.operation_id == "listJobs":
        parameters.append(
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
            }
        )
    operation: dict[str, Any] = {"operationId": route.operation_id, "summary": route.summary, "responses": responses}
    if parameters:
        operation["parameters"] = parameters
    if route.request is not None:
        operation["requestBody"] = {"required": True, "content": _json(refs[(route.request, "validation")])}
    return operation


def build_openapi(server_url: str | None = None, version: str | None = None) -> dict[str, Any]:
    """The document; ``server_url`` names the server it is served from (else the AWS and local forms)."""
    from vsr_client import __version__

    refs, schemas = _schemas()
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method] = _operation(route, refs)
    servers: list[dict[str, Any]] = (
        [{"url": server_url}]
        if server_url
        else [
            {
                "url": "https://{api_id}.execute-api.{region}.amazonaws.com/prod",
                "description": "the deployed stack (pulumi stack output api_url)",
                "variables": {"api_id": {"default": "abc123"}, "region": {"default": "eu-west-1"}},
            },
            {"url": "http://127.0.0.1:8080", "description": "vsr-local serve"},
        ]
    )
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "vsr: video super-resolution",
            "version": version or __version__,
            "description": "Upload a video, POST its key, poll the job, download the result upscaled x2 or x4. "
            'Every error answers {"error": {"code", "message", "field"}}.',
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": servers,
        "security": [{"apiKey": []}, {}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "apiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": API_KEY_HEADER,
                    "description": "required by the deployed API and by vsr-local serve --api-key",
                }
            },
        },
    }
