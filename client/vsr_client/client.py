"""The SDK: submit, status, wait, cancel, upload, download.

    from vsr_client import Client
    client = Client("https://abc.execute-api.eu-west-1.amazonaws.com/prod", api_key="...")
    key = client.upload("clip.mp4")
    job = client.submit(key, scale=4)
    client.wait(job.job_id, on_progress=print)
    client.download(job.job_id, "clip_x4.mp4")

The base URL and key default to ``$VSR_API_URL`` and ``$VSR_API_KEY``. Requests are retried
with exponential backoff (honouring ``Retry-After``) on 429, 5xx and connection errors; a
submit is retried safely because the SDK always sends an idempotency key.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import requests

from vsr_client.api_models import (
    API_KEY_HEADER,
    Env,
    JobAccepted,
    JobList,
    JobStatus,
    Scale,
    Task,
    UploadTarget,
)
from vsr_client.contract import DEFAULT_SEGMENT_TIME
from vsr_client.errors import JobFailed, TransportError, VsrApiError, error_class

URL_ENV = "VSR_API_URL"
KEY_ENV = "VSR_API_KEY"
_RETRY_STATUSES = (429, 500, 502, 503, 504)
_CHUNK = 1024 * 1024


class Client:
    """One API endpoint: ``Client(url, api_key=...)`` or ``Client()`` with the environment's."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 4,
        backoff: float = 0.5,
        session: requests.Session | None = None,
    ) -> None:
        url = base_url or os.environ.get(URL_ENV)
        if not url:
            raise ValueError(f"no API URL: pass base_url= or set ${URL_ENV}")
        self.base_url = url.rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get(KEY_ENV) or None
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self.session = session or requests.Session()

    # -- transport ----------------------------------------------------------------------
    def _delay(self, attempt: int, response: requests.Response | None) -> float:
        if response is not None:
            after = response.headers.get("Retry-After")
            if after and after.isdigit():
                return float(after)
        return self.backoff * (2.0**attempt) * (0.5 + random.random() / 2)

    def _send(self, method: str, url: str, api: bool, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if api and self.api_key:
            headers[API_KEY_HEADER] = self.api_key
        last: requests.Response | None = None
        for attempt in range(self.retries + 1):
            try:
                response = self.session.request(method, url, headers=headers, timeout=self.timeout, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt == self.retries:
                    what = "timed out" if isinstance(exc, requests.Timeout) else "could not connect"
                    raise TransportError(0, "unreachable", f"{method} {url.split('?')[0]}: {what}") from exc
                time.sleep(self._delay(attempt, None))
                continue
            if response.status_code in _RETRY_STATUSES and attempt < self.retries:
                last = response
                time.sleep(self._delay(attempt, response))
                continue
            return response
        assert last is not None
        return last

    def _api(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, self.base_url + path, api=True, **kwargs)
        if response.status_code >= 400:
            raise _api_error(response)
        return response.json()

    # -- jobs ---------------------------------------------------------------------------
    def submit(
        self,
        key: str,
        *,
        scale: Scale = 2,
        task: Task = "inference",
        env: Env = "spot",
        segment_time: float = DEFAULT_SEGMENT_TIME,
        model: str | None = None,
        output_key: str | None = None,
        idempotency_key: str | None = None,
    ) -> JobAccepted:
        """Submit a job for the object ``key`` in the bucket (``SubmitRequest`` documents each field).

        Without ``idempotency_key`` a random one is sent, so the SDK's own retries are safe.
        The server validates everything (its limits are configurable), so a bad value is the
        API's typed error, not a local one.
        """
        body: dict[str, object] = {"key": key, "scale": scale, "task": task, "env": env, "segment_time": segment_time}
        optional = {"model": model, "output_key": output_key, "idempotency_key": idempotency_key or uuid.uuid4().hex}
        body.update({name: value for name, value in optional.items() if value is not None})
        return JobAccepted.model_validate(self._api("POST", "/jobs", json=body))

    def status(self, job_id: str) -> JobStatus:
        return JobStatus.model_validate(self._api("GET", f"/jobs/{job_id}"))

    def jobs(self, limit: int = 20) -> list[JobStatus]:
        return JobList.model_validate(self._api("GET", "/jobs", params={"limit": limit})).jobs

    def cancel(self, job_id: str) -> JobStatus:
        return JobStatus.model_validate(self._api("DELETE", f"/jobs/{job_id}"))

    def wait(
        self,
        job_id: str,
        interval: float = 2.0,
        timeout: float | None = None,
        on_progress: Callable[[JobStatus], None] | None = None,
        raise_on_failure: bool = True,
    ) -> JobStatus:
        """Poll until the job ends; ``JobFailed`` if it failed or was cancelled."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.status(job_id)
            if on_progress is not None:
                on_progress(status)
            if status.done:
                if raise_on_failure and status.state != "succeeded":
                    raise JobFailed(status)
                return status
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} still {status.state} after {timeout}s")
            time.sleep(interval)

    # -- files --------------------------------------------------------------------------
    def upload(self, path: str | Path, key: str | None = None, content_type: str = "video/mp4") -> str:
        """Upload a local file through a presigned URL; returns the key to submit."""
        path = Path(path)
        size = path.stat().st_size
        body = {"filename": path.name, "size": size, "content_type": content_type}
        if key:
            body["key"] = key
        target = UploadTarget.model_validate(self._api("POST", "/uploads", json=body))
        if target.parts:
            self._upload_parts(path, target)
        else:
            with open(path, "rb") as fh:
                self._transfer(
                    "PUT", target.url or "", data=fh, headers={**target.headers, "Content-Length": str(size)}
                )
        return target.key

    def _upload_parts(self, path: Path, target: UploadTarget) -> None:
        etags = []
        part_size = target.part_size or 0
        try:
            with open(path, "rb") as fh:
                for part in target.parts:
                    fh.seek((part.part_number - 1) * part_size)
                    response = self._transfer("PUT", part.url, data=fh.read(part_size))
                    etags.append((part.part_number, response.headers.get("ETag", "")))
            xml = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{escape(tag)}</ETag></Part>" for n, tag in etags)
            self._transfer(
                "POST",
                target.complete_url or "",
                data=f"<CompleteMultipartUpload>{xml}</CompleteMultipartUpload>".encode(),
                headers={"Content-Type": "application/xml"},
            )
        except Exception:
            if target.abort_url:
                try:
                    self._send("DELETE", target.abort_url, api=False)
                except VsrApiError:
                    pass
            raise

    def _transfer(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        data = kwargs.get("data")
        seek = getattr(data, "seek", None)
        if seek is not None:
            seek(0)  # a retried PUT sends the file from its start again
        response = self._send(method, url, api=False, **kwargs)
        if response.status_code >= 300:
            raise error_class(response.status_code)(
                response.status_code, "transfer_failed", f"{method} of a presigned URL answered {response.status_code}"
            )
        return response

    def download(self, job_id: str, path: str | Path) -> Path:
        """Save a succeeded job's result at ``path`` (written to a temporary name first)."""
        status = self.status(job_id)
        if status.state != "succeeded" or not status.download_url:
            raise VsrApiError(409, "job_not_done", f"job {job_id} is {status.state}; nothing to download yet")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.part")
        response = self._send("GET", status.download_url, api=False, stream=True)
        if response.status_code >= 300:
            raise error_class(response.status_code)(response.status_code, "download_failed", response.text[:200])
        with response, open(tmp, "wb") as fh:
            for chunk in response.iter_content(_CHUNK):
                fh.write(chunk)
        tmp.replace(path)
        return path


def _api_error(response: requests.Response) -> VsrApiError:
    code, message, field = "http_error", f"HTTP {response.status_code}", None
    try:
        detail = response.json()["error"]
        code, message, field = detail["code"], detail["message"], detail.get("field")
    except (ValueError, KeyError, TypeError):
        # API Gateway's own answers ({"message": "Forbidden"}) are not in the contract's shape.
        try:
            message = response.json().get("message", message)
        except (ValueError, AttributeError):
            pass
    return error_class(response.status_code)(response.status_code, code, message, field)
