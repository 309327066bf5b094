"""Where a job's files live under its work prefix (one place, used by every stage).

<work>/manifest.json              the job, written before any stage runs
<work>/split/index.json           what split produced: owned ranges, chunks, frame counts
<work>/split/seg_NNNNN.mp4        stream-copied chunk covering segment N
<work>/upscaled/seg_NNNNN.mp4     upscaled, encoded frames owned by segment N
<work>/upscaled/seg_NNNNN.json    how many frames that part holds
<work>/progress/<stage>_NNNNN.json progress/heartbeat records
<work>/logs/<stage>_NNNNN.log     stage logs (local scheduler)
<work>/result.json                what merge wrote
<work>/timings.json               where a local run's time went (vsr-worker run, kept work only)
"""

from __future__ import annotations

from vsr_worker.storage import join


def manifest(work: str) -> str:
    return join(work, "manifest.json")


def split_dir(work: str) -> str:
    return join(work, "split")


def upscaled_dir(work: str) -> str:
    return join(work, "upscaled")


def split_index(work: str) -> str:
    return join(work, "split", "index.json")


def chunk(work: str, index: int, ext: str = "mp4") -> str:
    return join(work, "split", f"seg_{index:05d}.{ext}")


def part_info(work: str, index: int) -> str:
    """Written when segment ``index`` is complete: its frame count and checkpoint parts."""
    return join(work, "upscaled", f"seg_{index:05d}.json")


def checkpoint_dir(work: str, index: int) -> str:
    return join(work, "upscaled", f"seg_{index:05d}")


def checkpoint(work: str, index: int, number: int) -> str:
    """Checkpoint part ``number`` of segment ``index`` (a few hundred encoded frames)."""
    return join(checkpoint_dir(work, index), f"p{number:05d}.mp4")


def checkpoint_info(work: str, index: int, number: int) -> str:
    return join(checkpoint_dir(work, index), f"p{number:05d}.json")


def debug(work: str, name: str) -> str:
    return join(work, "debug", name)


def progress(work: str, stage: str, index: int = 0) -> str:
    return join(work, "progress", f"{stage}_{index:05d}.json")


def log(work: str, stage: str, index: int = 0) -> str:
    return join(work, "logs", f"{stage}_{index:05d}.log")


def result(work: str) -> str:
    return join(work, "result.json")


def timings(work: str) -> str:
    return join(work, "timings.json")
