"""The request contract: defaults, coercion and the error code of every bad field."""

from __future__ import annotations

import pytest

from vsr_client.api_models import ErrorBody, SubmitRequest, http_status, parse_submit_request
from vsr_client.contract import ErrorCode, VsrError


def test_seed_request_gets_the_seed_defaults() -> None:
    request = parse_submit_request({"key": "inputs/a.mp4"})
    assert (request.scale, request.task, request.env, request.segment_time) == (2, "inference", "spot", 60.0)
    assert request.model is None and request.output_key is None and request.idempotency_key is None


def test_numbers_sent_as_strings_are_read() -> None:
    request = parse_submit_request({"key": "inputs/a.mp4", "scale": "4", "segment_time": "2.5"})
    assert (request.scale, request.segment_time) == (4, 2.5)
    assert parse_submit_request({"key": "k", "scale": 4.0}).scale == 4


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({}, ErrorCode.MISSING_KEY, "key"),
        ({"key": ""}, ErrorCode.MISSING_KEY, "key"),
        ({"key": "k", "scale": 3}, ErrorCode.INVALID_SCALE, "scale"),
        ({"key": "k", "scale": 2.5}, ErrorCode.INVALID_SCALE, "scale"),
        ({"key": "k", "env": "spotty"}, ErrorCode.INVALID_ENV, "env"),
        ({"key": "k", "task": "x"}, ErrorCode.INVALID_TASK, "task"),
        ({"key": "k", "segment_time": -1}, ErrorCode.INVALID_SEGMENT_TIME, "segment_time"),
        ({"key": "k", "segment_time": float("nan")}, ErrorCode.INVALID_SEGMENT_TIME, "segment_time"),
        ({"key": "k", "segment_time": None}, ErrorCode.INVALID_SEGMENT_TIME, "segment_time"),
        ({"key": "k", "extra": 1}, ErrorCode.UNKNOWN_FIELD, "extra"),
        ({"key": "k", "idempotency_key": ""}, ErrorCode.INVALID_ARGUMENT, "idempotency_key"),
        (["k"], ErrorCode.INVALID_JSON, None),
    ],
)
def test_bad_field_maps_to_its_code(body, code: ErrorCode, field) -> None:
    with pytest.raises(VsrError) as exc:
        parse_submit_request(body)
    assert (exc.value.code, exc.value.field) == (code, field)


def test_every_api_code_has_a_4xx_or_5xx_status() -> None:
    for code in ErrorCode:
        assert 400 <= http_status(code) < 600
    assert http_status(ErrorCode.INPUT_NOT_FOUND) == 404 and http_status(ErrorCode.SUBMIT_FAILED) == 502


def test_error_body_shape() -> None:
    body = ErrorBody.of(VsrError(ErrorCode.INVALID_SCALE, "bad", "scale")).model_dump()
    assert body == {"error": {"code": "invalid_scale", "message": "bad", "field": "scale"}}
    assert set(SubmitRequest.model_fields) >= {"key", "scale", "task", "env", "segment_time"}
