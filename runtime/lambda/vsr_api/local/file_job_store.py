"""Job store as JSON files: ``DIR/.vsr-api/jobs/<id>.json``, ``.../idempotency/<sha>.json`` and
``.../outputs/<sha>.json`` (output keys claimed by jobs).

Every file is written under a temporary name and renamed. A record that is damaged anyway
(a disk error, an edit by hand) is skipped and logged by listings, so one bad file cannot
break ``GET /jobs`` for everyone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pydantic

from vsr_api.job_record import JobRecord
from vsr_client.contract import ErrorCode, VsrError

log = logging.getLogger(__name__)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class FileJobStore:
    def __init__(self, root: Path) -> None:
        self.jobs = root / "jobs"
        self.idem = root / "idempotency"
        self.outputs = root / "outputs"
        for folder in (self.jobs, self.idem, self.outputs):
            folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def _load(self, path: Path) -> JobRecord | None:
        try:
            return JobRecord.model_validate_json(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, pydantic.ValidationError) as exc:
            log.error("damaged job record skipped", extra={"record": path.name, "error": str(exc)[:200]})
            message = f"the record of job {path.stem} is damaged; see the server log"
            raise VsrError(ErrorCode.INTERNAL, message) from None

    def get(self, job_id: str) -> JobRecord | None:
        return self._load(self.jobs / f"{job_id}.json")

    def put(self, record: JobRecord) -> None:
        with self._lock:
            fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=self.jobs)
            with os.fdopen(fd, "w") as fh:
                fh.write(record.model_dump_json(indent=2))
            os.replace(tmp, self.jobs / f"{record.job_id}.json")

    def records(self) -> Iterator[JobRecord]:
        """Every readable record; damaged ones are logged and skipped."""
        for path in self.jobs.glob("*.json"):
            try:
                record = self._load(path)
            except VsrError:
                continue
            if record is not None:
                yield record

    def list_recent(self, limit: int) -> list[JobRecord]:
        records = sorted(self.records(), key=lambda r: r.created_at, reverse=True)
        return records[:limit]

    # -- claims: idempotency keys and output keys -------------------------------------------
    def _claim(self, path: Path, content: dict) -> dict | None:
        """Create ``path`` with ``content`` unless it exists; the existing content if it does."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                return json.loads(path.read_text())
            except (OSError, ValueError):  # a claim being written this instant, or damaged
                return {}
        with os.fdopen(fd, "w") as fh:
            json.dump(content, fh)
        return None

    def claim_idempotency(self, idempotency_key: str, job_id: str, request_hash: str) -> tuple[str, str] | None:
        claim = {"job_id": job_id, "request_hash": request_hash}
        held = self._claim(self.idem / f"{_sha(idempotency_key)}.json", claim)
        return None if held is None else (held.get("job_id", ""), held.get("request_hash", ""))

    def release_idempotency(self, idempotency_key: str) -> None:
        (self.idem / f"{_sha(idempotency_key)}.json").unlink(missing_ok=True)

    def claim_output(self, output_key: str, job_id: str) -> str | None:
        held = self._claim(self.outputs / f"{_sha(output_key)}.json", {"job_id": job_id, "output_key": output_key})
        holder = None if held is None else held.get("job_id", "")
        return None if holder in (None, job_id) else holder

    def release_output(self, output_key: str, job_id: str) -> None:
        path = self.outputs / f"{_sha(output_key)}.json"
        with self._lock:
            try:
                if json.loads(path.read_text()).get("job_id") == job_id:
                    path.unlink(missing_ok=True)
            except (OSError, ValueError):
                pass
