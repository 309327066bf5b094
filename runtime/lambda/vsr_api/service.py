"""The request service: validate, probe, plan, record, submit; status, list, cancel, uploads.

It knows nothing of HTTP or AWS: it talks to the ports, and raises VsrError for anything a
caller did wrong (the app maps codes to HTTP statuses in one place).
"""

from __future__ import annotations

import logging
import math
import re
import secrets
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import pydantic

from vsr_api import keys, progress_records
from vsr_api.job_record import JobRecord, request_fingerprint
from vsr_api.ports import JobStore, MediaInfo, Prober, Scheduler, Storage
from vsr_api.settings import ApiSettings
from vsr_client.api_models import (
    TERMINAL_STATES,
    JobAccepted,
    JobList,
    JobStatus,
    UploadRequest,
    UploadTarget,
    parse_submit_request,
)
from vsr_client.contract import ErrorCode, Manifest, SegmentPlan, VsrError, plan_segments
from vsr_client.jobgraph import MAX_ARRAY_SIZE, build_job_graph

log = logging.getLogger(__name__)

_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DOWNLOAD_URL_SECONDS = 3600
MAX_PROGRESS_SEGMENTS = 200


new_job_id = keys.new_job_id


@dataclass
class Submitted:
    accepted: JobAccepted
    replay: bool


class JobService:
    def __init__(
        self,
        settings: ApiSettings,
        storage: Storage,
        prober: Prober,
        store: JobStore,
        scheduler: Scheduler,
        models: Collection[str] | None = None,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.prober = prober
        self.store = store
        self.scheduler = scheduler
        self.models = models

    # -- submit ---------------------------------------------------------------------------
    def submit(self, body: Any, base_url: str) -> Submitted:
        request = parse_submit_request(body)
        s = self.settings
        if not s.segment_time_min <= request.segment_time <= s.segment_time_max:
            raise VsrError(
                ErrorCode.INVALID_SEGMENT_TIME,
                f"segment_time must be between {s.segment_time_min:g} and {s.segment_time_max:g} seconds, "
                f"got {request.segment_time:g}",
                "segment_time",
            )
        key = keys.source_key(request.key, s.reserved_prefixes)
        if request.idempotency_key:
            keys.check_text(request.idempotency_key, "idempotency_key")
        model = self._model(request.model)
        job_id = new_job_id()
        out_key = keys.output_key(request.output_key, key, job_id, request.scale, s.output_prefix)

        fingerprint = request_fingerprint(request)
        if request.idempotency_key:
            # Claimed before probing: a retry costs no S3 reads and can never make a second job.
            # A replay returns here, before the output checks: its own result may exist by now.
            held = self.store.claim_idempotency(request.idempotency_key, job_id, fingerprint)
            if held is not None:
                return self._replay(held, fingerprint, base_url)
        claimed = False
        try:
            if request.output_key:
                self._claim_output(out_key, job_id)
                claimed = True
            media = self._probe(key)
            plan = plan_segments(media.duration, request.segment_time)
            self._check_array_size(plan, media.duration)
        except Exception:
            self._release_claims(request.idempotency_key, out_key if claimed else None, job_id)
            raise

        work = keys.work_prefix(job_id, s.work_prefix)
        record = JobRecord(
            job_id=job_id,
            key=key,
            scale=request.scale,
            task=request.task,
            env=request.env,
            model=model,
            segment_time=request.segment_time,
            segments=plan.count,
            duration=media.duration,
            output_key=out_key,
            work_prefix=work,
            manifest_key=keys.manifest_key(job_id, s.work_prefix),
            idempotency_key=request.idempotency_key,
            request_hash=fingerprint,
            expires_at=int(time.time()) + s.job_ttl_days * 86400,
        )
        manifest = Manifest(
            job_id=job_id,
            source=self.storage.uri(key),
            work=self.storage.uri(work),
            output=self.storage.uri(out_key),
            scale=request.scale,
            model=model,
            device=s.device,
            task=request.task,
            plan=plan,
        )
        try:
            self.storage.put_json(record.manifest_key, manifest.model_dump(mode="json"))
            self.store.put(record)
            graph = build_job_graph(self.storage.uri(record.manifest_key), plan.count)
            record.scheduler_ids = self.scheduler.submit(record, graph)
        except Exception as exc:
            log.exception("submit failed", extra={"job_id": job_id})
            record.state = "failed"
            record.failure_reason = f"[submit_failed] the job could not be submitted ({type(exc).__name__})"
            record.touch()
            try:
                self.store.put(record)
            finally:
                self._release_claims(request.idempotency_key, out_key if claimed else None, job_id)
            raise VsrError(
                ErrorCode.SUBMIT_FAILED,
                f"could not submit job {job_id}; nothing is left running, retry later ({type(exc).__name__})",
            ) from exc
        record.touch()
        self.store.put(record)
        log.info(
            "job submitted",
            extra={"job_id": job_id, "key": key, "segments": plan.count, "bytes_probed": media.bytes_read},
        )
        return Submitted(self._accepted(record, base_url), replay=False)

    def _release_claims(self, idempotency_key: str | None, out_key: str | None, job_id: str) -> None:
        if idempotency_key:
            self.store.release_idempotency(idempotency_key)
        if out_key:
            self.store.release_output(keys.output_claim(out_key), job_id)

    def _claim_output(self, out_key: str, job_id: str) -> None:
        """Make a requested output key this job's, or refuse it: no job writes over an existing
        object or over another job's result (claimed in the job store, so two submits racing
        for one key cannot both win)."""
        for variant in keys.output_variants(out_key):
            try:
                existing = self.storage.head(variant)
            except VsrError:  # the local storage: a symbolic link leading out of the data directory
                raise VsrError(
                    ErrorCode.INVALID_OUTPUT_KEY, f"output_key {variant!r} resolves outside the bucket", "output_key"
                ) from None
            if existing is not None:
                raise VsrError(
                    ErrorCode.OUTPUT_EXISTS,
                    f"output_key {variant!r} names an existing object; choose another key",
                    "output_key",
                )
        claim = keys.output_claim(out_key)
        holder = self.store.claim_output(claim, job_id)
        held = self.store.get(holder) if holder else None
        if held is not None and self._refresh(held).state in ("failed", "cancelled"):
            # Its job ended without a result (and nobody asked since): the key is free again.
            self.store.release_output(claim, held.job_id)
            holder = self.store.claim_output(claim, job_id)
        if holder is not None:
            raise VsrError(
                ErrorCode.OUTPUT_EXISTS,
                f"output_key {out_key!r} is where job {holder} writes its result; choose another key",
                "output_key",
            )

    def _check_array_size(self, plan: SegmentPlan, duration: float) -> None:
        """Refuse a plan with more segments than an AWS Batch array job has children, and say
        which segment_time would fit (the same limit holds for the local engine)."""
        if plan.count <= MAX_ARRAY_SIZE:
            return
        fits = max(self.settings.segment_time_min, math.ceil(duration / MAX_ARRAY_SIZE * 100) / 100)
        while plan_segments(duration, fits).count > MAX_ARRAY_SIZE:
            fits = round(fits + 0.01, 2)
        raise VsrError(
            ErrorCode.TOO_MANY_SEGMENTS,
            f"{duration:.1f} s of video at segment_time {plan.segment_time:g} makes {plan.count} segments; "
            f"at most {MAX_ARRAY_SIZE} run as one job: use segment_time {fits:g} or more",
            "segment_time",
        )

    def _probe(self, key: str) -> MediaInfo:
        s = self.settings
        obj = self.storage.head(key)
        if obj is None:
            raise VsrError(ErrorCode.INPUT_NOT_FOUND, f"no object {key!r} in the bucket", "key")
        if obj.size == 0:
            raise VsrError(ErrorCode.EMPTY_INPUT, f"{key!r} is empty (0 bytes)", "key")
        if obj.size > s.max_input_bytes:
            raise VsrError(
                ErrorCode.INPUT_TOO_LARGE, f"{key!r} is {obj.size} bytes; the limit is {s.max_input_bytes}", "key"
            )
        media = self.prober.probe(self.storage, obj)
        if media.duration > s.max_duration_seconds:
            raise VsrError(
                ErrorCode.INPUT_TOO_LONG,
                f"{key!r} lasts {media.duration:.1f}s; the limit is {s.max_duration_seconds:g}s",
                "key",
            )
        return media

    def _replay(self, held: tuple[str, str], fingerprint: str, base_url: str) -> Submitted:
        job_id, held_hash = held
        if held_hash != fingerprint:
            raise VsrError(
                ErrorCode.IDEMPOTENCY_CONFLICT,
                f"idempotency_key was used for job {job_id} with different parameters",
                "idempotency_key",
            )
        record = self.store.get(job_id)
        if record is None:  # claimed by a submit still in flight
            raise VsrError(ErrorCode.IDEMPOTENCY_CONFLICT, f"job {job_id} is still being submitted; retry shortly")
        accepted = self._accepted(record, base_url)
        accepted.idempotent_replay = True
        return Submitted(accepted, replay=True)

    def _accepted(self, record: JobRecord, base_url: str) -> JobAccepted:
        return JobAccepted(
            job_id=record.job_id,
            status_url=f"{base_url.rstrip('/')}/jobs/{record.job_id}",
            state=record.state,
            segments=record.segments,
            output_key=record.output_key,
        )

    def _model(self, requested: str | None) -> str:
        model = requested or self.settings.default_model
        if not _MODEL_NAME.match(model) or (self.models is not None and model not in self.models):
            known = f"; available: {', '.join(sorted(self.models))}" if self.models is not None else ""
            raise VsrError(ErrorCode.INVALID_MODEL, f"unknown model {model!r}{known}", "model")
        return model

    # -- status ---------------------------------------------------------------------------
    def status(self, job_id: str) -> JobStatus:
        return self._status(self._record(job_id))

    def _record(self, job_id: str) -> JobRecord:
        record = self.store.get(job_id) if re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", job_id) else None
        if record is None:
            raise VsrError(ErrorCode.JOB_NOT_FOUND, f"no job {job_id!r}", "job_id")
        return record

    def _refresh(self, record: JobRecord) -> JobRecord:
        if record.state in TERMINAL_STATES or not record.scheduler_ids:
            return record
        seen = self.scheduler.observe(record)
        # Frame counts need one read per record: past a few hundred segments Batch's counts suffice.
        progress_dir = f"{record.work_prefix}/progress/"
        records = self.storage.read_json_under(progress_dir) if record.segments <= MAX_PROGRESS_SEGMENTS else []
        progress = progress_records.combine(seen.progress, progress_records.from_records(records, record.segments))
        reason = seen.failure_reason
        if seen.state == "failed":
            reason = progress_records.failure_reason(progress) or reason
        if (seen.state, progress, reason) != (record.state, record.progress, record.failure_reason):
            if seen.state == "succeeded":
                record.output_key = self._written_output(record)
            elif seen.state in ("failed", "cancelled"):
                self.store.release_output(keys.output_claim(record.output_key), record.job_id)
            record.state, record.progress, record.failure_reason = seen.state, progress, reason
            record.touch()
            self.store.put(record)
        return record

    def _written_output(self, record: JobRecord) -> str:
        """Where merge really wrote: Matroska instead of MP4 when MP4 cannot hold a source stream."""
        result = self.storage.read_json(f"{record.work_prefix}/result.json") or {}
        written = result.get("output")
        expected = self.storage.uri(record.output_key)
        if isinstance(written, str) and written != expected and written.rsplit(".", 1)[0] == expected.rsplit(".", 1)[0]:
            return record.output_key.rsplit(".", 1)[0] + "." + written.rsplit(".", 1)[1]
        return record.output_key

    def _status(self, record: JobRecord) -> JobStatus:
        record = self._refresh(record)
        url = None
        if record.state == "succeeded":
            url = self.storage.download_url(record.output_key, DOWNLOAD_URL_SECONDS)
        return JobStatus(
            **record.model_dump(include=set(JobStatus.model_fields) - {"download_url"}),
            download_url=url,
        )

    def list_jobs(self, limit: int = 20) -> JobList:
        limit = max(1, min(limit, 100))
        return JobList(jobs=[self._status(r) for r in self.store.list_recent(limit)])

    # -- cancel ---------------------------------------------------------------------------
    def cancel(self, job_id: str) -> JobStatus:
        record = self._refresh(self._record(job_id))
        if record.state in TERMINAL_STATES:
            raise VsrError(ErrorCode.JOB_NOT_CANCELLABLE, f"job {job_id} has already {record.state}", "job_id")
        self.scheduler.cancel(record)
        self.store.release_output(keys.output_claim(record.output_key), record.job_id)
        record.state, record.failure_reason = "cancelled", "cancelled by request"
        record.touch()
        self.store.put(record)
        log.info("job cancelled", extra={"job_id": job_id})
        return self._status(record)

    # -- uploads --------------------------------------------------------------------------
    def upload(self, body: Any) -> UploadTarget:
        if not isinstance(body, dict):
            raise VsrError(ErrorCode.INVALID_JSON, "request body must be a JSON object")
        unknown = sorted(set(body) - set(UploadRequest.model_fields))
        if unknown:
            raise VsrError(ErrorCode.UNKNOWN_FIELD, f"unknown field {unknown[0]!r}", unknown[0])
        try:
            request = UploadRequest.model_validate(body)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            field = str(first["loc"][0]) if first["loc"] else None
            raise VsrError(ErrorCode.INVALID_ARGUMENT, f"{field}: {first['msg']}", field) from None
        if request.size is not None and request.size > self.settings.max_input_bytes:
            raise VsrError(
                ErrorCode.INPUT_TOO_LARGE,
                f"{request.size} bytes is over the limit of {self.settings.max_input_bytes}",
                "size",
            )
        keys.check_text(request.content_type, "content_type")
        s = self.settings
        key = keys.upload_key(request.key, request.filename, secrets.token_hex(8), s.input_prefix, s.reserved_prefixes)
        self.storage.uri(key)  # the local storage refuses a key that leads out of its directory
        return self.storage.upload_target(key, request.size, request.content_type)
