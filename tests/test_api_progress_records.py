"""A job's per-stage progress as the API reports it, from the records the worker stages write."""

from __future__ import annotations

from vsr_api.progress_records import combine, failure_reason, from_records
from vsr_client.api_models import JobProgress, StageProgress

SPLIT_FAILED = {
    "stage": "split",
    "index": 0,
    "state": "failed",
    "error": {"code": "corrupt_input", "message": "video stream holds no decodable frame: clip.mp4"},
}


def scheduler_view(split: str = "pending") -> JobProgress:
    """What a scheduler that has not caught up yet reports: split at ``split``, the rest pending."""
    return JobProgress(
        split=StageProgress(state=split, done=0, total=1),
        upscale=StageProgress(state="pending", done=0, total=3),
        merge=StageProgress(state="pending", done=0, total=1),
    )


def test_a_stage_whose_record_failed_is_failed_not_running() -> None:
    records = from_records([SPLIT_FAILED], segments=3)
    assert (records.split.state, records.split.failed) == ("failed", 1)
    assert records.split.reason == "[corrupt_input] video stream holds no decodable frame: clip.mp4"


def test_the_worker_record_wins_over_a_scheduler_that_has_not_seen_the_failure() -> None:
    for seen in ("pending", "running"):
        progress = combine(scheduler_view(seen), from_records([SPLIT_FAILED], segments=3))
        assert progress.split.state == "failed" and progress.split.failed == 1, seen
        assert progress.upscale.state == "pending"


def test_once_the_scheduler_sees_the_failure_the_reason_is_the_workers_own() -> None:
    progress = combine(scheduler_view("failed"), from_records([SPLIT_FAILED], segments=3))
    assert failure_reason(progress) == "split: [corrupt_input] video stream holds no decodable frame: clip.mp4"


def test_a_failed_array_child_fails_the_stage_and_names_the_child() -> None:
    children = [
        {"stage": "upscale", "index": 0, "state": "done", "done": 10, "total": 10},
        {"stage": "upscale", "index": 1, "state": "failed", "error": {"code": "no_space", "message": "disk full"}},
        {"stage": "upscale", "index": 2, "state": "running", "done": 3, "total": 10},
    ]
    up = from_records(children, segments=3).upscale
    assert (up.state, up.done, up.failed) == ("failed", 1, 1)
    assert up.reason == "child 1: [no_space] disk full"
