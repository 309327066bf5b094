"""The OpenAPI document: generated from the contract, valid 3.1, current on disk, true to the handler."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from moto import mock_aws
from openapi_spec_validator import validate

from tests.api.media import small_video
from tests.api.moto_world import BUCKET, MOTO_BATCH, FakeContext, World, build_world, proxy_event
from vsr_api.app import build_app
from vsr_client.openapi import ROUTES, build_openapi

ROOT = Path(__file__).resolve().parents[1]
EXPORTED = ROOT / "docs" / "openapi.json"


@pytest.fixture(scope="module")
def document() -> dict:
    return build_openapi()


@pytest.fixture()
def world(tmp_path: Path):
    with mock_aws(config=MOTO_BATCH):
        w = build_world()
        w.s3.upload_file(str(small_video(tmp_path / "clip.mp4")), BUCKET, "xxxx.mp4")
        yield w


def call(world: World, method: str, path: str, body=None) -> dict:
    return world.handler(proxy_event(method, path, body), FakeContext())


def assert_matches(document: dict, schema_name: str, answer: dict) -> None:
    """Validate an answer with jsonschema (draft 2020-12, as OpenAPI 3.1) against the document's schema."""
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": document["components"]}
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(answer)


def test_the_document_is_valid_openapi_3_1(document: dict) -> None:
    validate(document)  # openapi-spec-validator picks the 3.1 validator from "openapi"
    assert document["openapi"] == "3.1.0"


def test_the_exported_document_is_current(document: dict) -> None:
    assert json.loads(EXPORTED.read_text()) == document, "run: python scripts/export_openapi.py"
    check = subprocess.run([sys.executable, "scripts/export_openapi.py", "--check"], cwd=ROOT, capture_output=True)
    assert check.returncode == 0, check.stderr


def test_the_documented_routes_are_the_handlers_routes() -> None:
    app = build_app(service=None)  # type: ignore[arg-type]  # routes only; nothing is called
    served = {(r.method.lower(), r.openapi_path) for r in [*app._static_routes, *app._dynamic_routes]}
    # HEAD is GET without the body (RFC 9110, 9.3.2): every GET answers it, and only a GET does.
    heads = {path for method, path in served if method == "head"}
    assert heads == {path for method, path in served if method == "get"}
    assert {(m, p) for m, p in served if m != "head"} == {(r.method, r.path) for r in ROUTES}


def test_submit_answers_202_with_location_naming_the_status_url(world: World, document: dict) -> None:
    response = call(world, "POST", "/", {"key": "xxxx.mp4", "scale": 2, "task": "inference", "env": "spot"})
    body = json.loads(response["body"])
    assert response["statusCode"] == 202
    # The REST API (v1) proxy format: Powertools answers headers as multiValueHeaders.
    headers = {**response.get("headers", {}), **{k: v[-1] for k, v in response.get("multiValueHeaders", {}).items()}}
    assert headers["Location"] == body["status_url"]
    assert "Location" in document["paths"]["/"]["post"]["responses"]["202"]["headers"]


def test_real_answers_match_the_documented_schemas(world: World, document: dict) -> None:
    accepted = json.loads(call(world, "POST", "/jobs", {"key": "xxxx.mp4", "segment_time": 1})["body"])
    assert_matches(document, "JobAccepted", accepted)
    assert_matches(document, "JobStatus", json.loads(call(world, "GET", f"/jobs/{accepted['job_id']}")["body"]))
    assert_matches(document, "JobList", json.loads(call(world, "GET", "/jobs")["body"]))
    upload = json.loads(call(world, "POST", "/uploads", {"filename": "a.mp4", "size": 10})["body"])
    assert_matches(document, "UploadTarget", upload)
    error = call(world, "POST", "/", {"key": "xxxx.mp4", "scale": 3})
    assert error["statusCode"] == 400
    assert_matches(document, "ErrorBody", json.loads(error["body"]))
    assert "invalid_scale" in document["paths"]["/"]["post"]["responses"]["400"]["description"]


def test_a_documented_request_schema_rejects_what_the_api_rejects(document: dict) -> None:
    with pytest.raises(jsonschema.ValidationError):
        assert_matches(document, "SubmitRequest", {"key": "xxxx.mp4", "segmenttime": 30})  # unknown field
    with pytest.raises(jsonschema.ValidationError):
        assert_matches(document, "SubmitRequest", {"key": "xxxx.mp4", "scale": 3})
    assert_matches(document, "SubmitRequest", {"key": "xxxx.mp4", "scale": 4, "env": "onDemand"})
