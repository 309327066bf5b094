"""Per-stage progress from the records the worker stages write under ``<work>/progress/``.

See vsr_worker.progress: one JSON record per (stage, index) with ``state`` running|done and
frame counts, or ``failed`` with the stage's one-line error (which makes the stage failed even
where the scheduler has not caught up). The scheduler's view (Batch job
states) wins where it knows more; a failed stage's reason is the worker's own words.
"""

from __future__ import annotations

from vsr_client.api_models import JobProgress, StageProgress

_RANK = {"pending": 0, "running": 1, "succeeded": 2, "failed": 3, "cancelled": 3}


def from_records(records: list[dict], segments: int) -> JobProgress:
    by_stage: dict[str, list[dict]] = {"split": [], "upscale": [], "merge": []}
    for rec in records:
        if rec.get("stage") in by_stage:
            by_stage[rec["stage"]].append(rec)
    out = {}
    for stage, recs in by_stage.items():
        total = segments if stage == "upscale" else 1
        done = sum(1 for r in recs if r.get("state") == "done")
        failed = sum(1 for r in recs if r.get("state") == "failed")
        state = "running" if recs else "pending"
        if failed:
            state = "failed"
        elif recs and done >= total:
            state = "succeeded"
        frames_total = None
        if stage == "upscale":
            # Split counts every frame; children only report theirs once they start.
            split_total = max((r.get("total") or 0 for r in by_stage["split"]), default=0)
            frames_total = max(sum(r.get("total") or 0 for r in recs), split_total)
        out[stage] = StageProgress(
            state=state,
            done=done,
            total=total,
            failed=failed,
            frames_done=sum(r.get("done", 0) for r in recs) if recs else None,
            frames_total=frames_total or (recs[0].get("total") if recs and stage != "upscale" else None),
            reason=_error(recs, stage == "upscale" and segments > 1),
        )
    return JobProgress(**out)


def _error(records: list[dict], array: bool) -> str | None:
    """The first failed record's ``[code] message`` (``child N: ...`` in an array)."""
    for rec in sorted(records, key=lambda r: r.get("index") or 0):
        error = rec.get("error") if rec.get("state") == "failed" else None
        if isinstance(error, dict) and error.get("code"):
            text = f"[{error['code']}] {error.get('message', '')}".strip()
            return f"child {rec.get('index', 0)}: {text}" if array else text
    return None


def failure_reason(progress: JobProgress) -> str | None:
    """``<stage>: <reason>`` of the first failed stage (later ones failed because it did)."""
    for stage in ("split", "upscale", "merge"):
        p: StageProgress = getattr(progress, stage)
        if p.state == "failed" and p.reason:
            return f"{stage}: {p.reason}"
    return None


def combine(scheduler: JobProgress, records: JobProgress) -> JobProgress:
    """The scheduler's stage states where it knows them, the records' otherwise; frames from the records."""
    merged = {}
    for stage in ("split", "upscale", "merge"):
        s: StageProgress = getattr(scheduler, stage)
        r: StageProgress = getattr(records, stage)
        if s.state != "pending" and _RANK[s.state] >= _RANK[r.state]:
            update = {"frames_done": r.frames_done, "frames_total": r.frames_total}
            if s.state == "failed" and r.reason:  # the worker's error beats Batch's exit status
                update["reason"] = r.reason
            merged[stage] = s.model_copy(update=update)
        else:
            # The state from the records (a failed record fails the stage); the reason stays the
            # scheduler's, which words it for its callers (the local runner shows data-dir paths
            # as keys); Batch's view takes the worker's words in the branch above.
            merged[stage] = r.model_copy(update={"failed": max(s.failed, r.failed), "reason": s.reason})
    return JobProgress(**merged)
