"""The SDK's transport: backoff on 429/5xx, typed errors, safe submit retries (no server needed)."""

from __future__ import annotations

import json

import pytest
import requests
from requests.adapters import BaseAdapter

from vsr_client import client as client_module
from vsr_client.client import Client
from vsr_client.errors import BadRequest, ServerError, Throttled, TransportError

ACCEPTED = {"job_id": "j1", "status_url": "http://api/jobs/j1", "state": "queued", "segments": 2, "output_key": "o.mp4"}


class Scripted(BaseAdapter):
    """Answers each request with the next scripted (status, body, headers); records requests."""

    def __init__(self, script: list) -> None:
        super().__init__()
        self.script = list(script)
        self.requests: list[requests.PreparedRequest] = []

    def send(self, request, **kwargs):  # type: ignore[override]
        self.requests.append(request)
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        status, body, headers = (*item, {})[:3]
        response = requests.Response()
        response.status_code = status
        response._content = json.dumps(body).encode()
        response.headers.update({"Content-Type": "application/json", **headers})
        response.request, response.url = request, request.url
        return response

    def close(self) -> None:
        pass


def client_with(script: list, monkeypatch: pytest.MonkeyPatch, **kw) -> tuple[Client, Scripted, list[float]]:
    sleeps: list[float] = []
    monkeypatch.setattr(client_module.time, "sleep", sleeps.append)
    session = requests.Session()
    adapter = Scripted(script)
    session.mount("http://", adapter)
    return Client("http://api", api_key="k", session=session, **kw), adapter, sleeps


def error(code: str) -> dict:
    return {"error": {"code": code, "message": code.replace("_", " "), "field": None}}


def test_retries_429_and_5xx_with_growing_backoff_then_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    script = [(429, error("throttled")), (503, {"message": "Service Unavailable"}), (202, ACCEPTED)]
    client, adapter, sleeps = client_with(script, monkeypatch, retries=3, backoff=1.0)
    job = client.submit("inputs/a.mp4")
    assert job.job_id == "j1"
    assert len(adapter.requests) == 3 and len(sleeps) == 2
    assert 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0
    keys = {json.loads(r.body)["idempotency_key"] for r in adapter.requests}
    assert len(keys) == 1  # every retry carries the same idempotency key: one job at most
    assert all(r.headers["x-api-key"] == "k" for r in adapter.requests)


def test_retry_after_header_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    client, _, sleeps = client_with([(429, error("throttled"), {"Retry-After": "7"}), (200, {"jobs": []})], monkeypatch)
    assert client.jobs() == []
    assert sleeps == [7.0]


def test_gives_up_after_retries_with_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    client, adapter, _ = client_with([(429, error("throttled"))] * 3, monkeypatch, retries=2)
    with pytest.raises(Throttled) as exc:
        client.jobs()
    assert exc.value.code == "throttled" and len(adapter.requests) == 3
    client, _, _ = client_with([(502, error("submit_failed"))], monkeypatch, retries=0)
    with pytest.raises(ServerError) as failed:
        client.submit("inputs/a.mp4")
    assert (failed.value.status, failed.value.code) == (502, "submit_failed")


def test_client_errors_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    body = {"error": {"code": "invalid_scale", "message": "scale must be 2 or 4", "field": "scale"}}
    client, adapter, sleeps = client_with([(400, body)], monkeypatch)
    with pytest.raises(BadRequest) as exc:
        client.submit("inputs/a.mp4", scale=3)
    assert (exc.value.code, exc.value.field) == ("invalid_scale", "scale")
    assert len(adapter.requests) == 1 and sleeps == []


def test_connection_errors_are_retried_then_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    script = [requests.ConnectionError("refused")] * 2
    client, adapter, sleeps = client_with(script, monkeypatch, retries=1)
    with pytest.raises(TransportError):
        client.status("j1")
    assert len(adapter.requests) == 2 and len(sleeps) == 1


def test_url_and_key_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VSR_API_URL", "https://example.test/prod/")
    monkeypatch.setenv("VSR_API_KEY", "from-env")
    client = Client()
    assert (client.base_url, client.api_key) == ("https://example.test/prod", "from-env")
    monkeypatch.delenv("VSR_API_URL")
    with pytest.raises(ValueError):
        Client()
