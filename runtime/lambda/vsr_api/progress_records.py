"""Per-stage progress from the records the worker stages write under ``<work>/progress/``.

See vsr_worker.progress: one JSON record per (stage, index) with ``state`` running|done and
frame counts. The scheduler's view (Batch job states) wins where it knows more.
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
        state = "succeeded" if recs and done >= total else ("running" if recs else "pending")
        frames_total = None
        if stage == "upscale":
            # Split counts every frame; children only report theirs once they start.
            split_total = max((r.get("total") or 0 for r in by_stage["split"]), default=0)
            frames_total = max(sum(r.get("total") or 0 for r in recs), split_total)
        out[stage] = StageProgress(
            state=state,
            done=done,
            total=total,
            frames_done=sum(r.get("done", 0) for r in recs) if recs else None,
            frames_total=frames_total or (recs[0].get("total") if recs and stage != "upscale" else None),
        )
    return JobProgress(**out)


def combine(scheduler: JobProgress, records: JobProgress) -> JobProgress:
    """The scheduler's stage states where it knows them, the records' otherwise; frames from the records."""
    merged = {}
    for stage in ("split", "upscale", "merge"):
        s: StageProgress = getattr(scheduler, stage)
        r: StageProgress = getattr(records, stage)
        if s.state != "pending" and _RANK[s.state] >= _RANK[r.state]:
            merged[stage] = s.model_copy(update={"frames_done": r.frames_done, "frames_total": r.frames_total})
        else:
            merged[stage] = r.model_copy(update={"failed": s.failed, "reason": s.reason})
    return JobProgress(**merged)
