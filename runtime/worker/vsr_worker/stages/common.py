"""Helpers shared by the stages: loading the manifest and the split index."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional

import pydantic

from vsr_client.contract import ErrorCode, Manifest, SegmentPlan, VsrError
from vsr_client.jobgraph import ARRAY_INDEX_ENV
from vsr_worker import layout, storage


def load_manifest(uri: str) -> Manifest:
    try:
        raw = storage.read_json(uri)
    except FileNotFoundError:
        raise VsrError(ErrorCode.INVALID_MANIFEST, f"manifest not found: {uri}") from None
    except ValueError as exc:
        raise VsrError(ErrorCode.INVALID_MANIFEST, f"manifest is not JSON: {uri} ({exc})") from None
    try:
        return Manifest.model_validate(raw)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise VsrError(ErrorCode.INVALID_MANIFEST, f"manifest {uri}: {where}: {first['msg']}") from None


def array_index(explicit: Optional[int] = None) -> int:
    """The segment this process owns: ``--index``, else Batch's array index, else 0."""
    if explicit is not None:
        return explicit
    value = os.environ.get(ARRAY_INDEX_ENV)
    if value is None or value == "":
        return 0
    try:
        return int(value)
    except ValueError:
        raise VsrError(ErrorCode.INVALID_ARGUMENT, f"{ARRAY_INDEX_ENV} is not an integer: {value!r}") from None


@dataclass(frozen=True)
class Ownership:
    """Maps a video pts to the segment that owns it (see SegmentPlan)."""

    plan: SegmentPlan
    t0: int
    time_base: Fraction

    def owner(self, pts: int) -> int:
        seconds = (pts - self.t0) * self.time_base
        i = math.floor(seconds / Fraction(repr(self.plan.segment_time)))
        return min(max(i, 0), self.plan.count - 1)

    def pts_bounds(self, index: int) -> tuple[Optional[int], Optional[int]]:
        """Owned pts range ``[lo, hi)`` of a segment in stream units (None = open end)."""
        lo_s, hi_s = self.plan.bounds(index)
        to_pts = lambda s: None if s is None else self.t0 + math.ceil(s / self.time_base)  # noqa: E731
        return to_pts(lo_s), to_pts(hi_s)


def load_split_index(manifest: Manifest) -> dict:
    uri = layout.split_index(manifest.work)
    if not storage.exists(uri):
        raise VsrError(ErrorCode.STAGE_FAILED, f"split has not run for job {manifest.job_id}: {uri} missing")
    return storage.read_json(uri)
