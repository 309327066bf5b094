"""Job store as JSON files: ``DIR/.vsr-api/jobs/<id>.json`` and ``.../idempotency/<sha>.json``."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path

from vsr_api.job_record import JobRecord


class FileJobStore:
    def __init__(self, root: Path) -> None:
        self.jobs = root / "jobs"
        self.idem = root / "idempotency"
        self.jobs.mkdir(parents=True, exist_ok=True)
        self.idem.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def get(self, job_id: str) -> JobRecord | None:
        path = self.jobs / f"{job_id}.json"
        try:
            return JobRecord.model_validate_json(path.read_text())
        except FileNotFoundError:
            return None

    def put(self, record: JobRecord) -> None:
        with self._lock:
            fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=self.jobs)
            with os.fdopen(fd, "w") as fh:
                fh.write(record.model_dump_json(indent=2))
            os.replace(tmp, self.jobs / f"{record.job_id}.json")

    def list_recent(self, limit: int) -> list[JobRecord]:
        records = [JobRecord.model_validate_json(p.read_text()) for p in self.jobs.glob("*.json")]
        records.sort(key=lambda r: r.created_at, reverse=True)
        return records[:limit]

    def _idem_path(self, key: str) -> Path:
        return self.idem / (hashlib.sha256(key.encode()).hexdigest() + ".json")

    def claim_idempotency(self, idempotency_key: str, job_id: str, request_hash: str) -> tuple[str, str] | None:
        path = self._idem_path(idempotency_key)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            held = json.loads(path.read_text())
            return held["job_id"], held["request_hash"]
        with os.fdopen(fd, "w") as fh:
            json.dump({"job_id": job_id, "request_hash": request_hash}, fh)
        return None

    def release_idempotency(self, idempotency_key: str) -> None:
        self._idem_path(idempotency_key).unlink(missing_ok=True)
