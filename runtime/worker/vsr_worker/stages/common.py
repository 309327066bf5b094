"""Helpers shared by the stages: loading the manifest and the split index."""

from __future__ import annotations

import bisect
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, List, Optional, Tuple, Union

from vsr_client.codes import ErrorCode, VsrError
from vsr_client.manifest_view import ManifestView, fast_view
from vsr_worker import layout, storage
from vsr_worker.errors import corrupt

if TYPE_CHECKING:
    from vsr_client.contract import Manifest, SegmentPlan


def load_manifest(uri: str) -> Union["Manifest", ManifestView]:
    """The job's manifest: the pydantic-free view when it is canonical, else the validated
    model (same attributes either way; see vsr_client.manifest_view)."""
    try:
        raw = storage.read_json(uri)
    except FileNotFoundError:
        raise VsrError(ErrorCode.INVALID_MANIFEST, f"manifest not found: {uri}") from None
    except ValueError as exc:
        raise VsrError(ErrorCode.INVALID_MANIFEST, f"manifest is not JSON: {uri} ({exc})") from None
    view = fast_view(raw)
    if view is not None:
        return view
    import pydantic

    from vsr_client.contract import Manifest

    try:
        return Manifest.model_validate(raw)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise VsrError(ErrorCode.INVALID_MANIFEST, f"manifest {uri}: {where}: {first['msg']}") from None


def array_indices(explicit: Optional[str] = None) -> List[int]:
    """The segments this process owns: ``--index I[,J...]``, else Batch's array index, else 0."""
    if explicit is not None:
        try:
            indices = [int(part) for part in explicit.split(",")]
        except ValueError:
            raise VsrError(ErrorCode.INVALID_ARGUMENT, f"--index takes I[,J...], got {explicit!r}") from None
        if any(i < 0 for i in indices):
            raise VsrError(ErrorCode.INVALID_ARGUMENT, f"--index takes indices >= 0, got {explicit!r}")
        return indices
    from vsr_client.jobgraph import ARRAY_INDEX_ENV  # imported here: the job graph needs pydantic

    value = os.environ.get(ARRAY_INDEX_ENV)
    if value is None or value == "":
        return [0]
    try:
        return [int(value)]
    except ValueError:
        raise VsrError(ErrorCode.INVALID_ARGUMENT, f"{ARRAY_INDEX_ENV} is not an integer: {value!r}") from None


@dataclass(frozen=True)
class Ownership:
    """Maps a video pts to the segment that owns it (see SegmentPlan).

    Segment ``i`` owns ``[t0 + ceil(i*T/tb), t0 + ceil((i+1)*T/tb))`` in stream units: the
    exact integer form of ``i*T <= (pts - t0) * tb < (i+1)*T``.
    """

    plan: "SegmentPlan"  # or the manifest view's PlanView: count and segment_time
    t0: int
    time_base: Fraction

    @property
    def cuts(self) -> List[int]:
        """First pts of segments 1..count-1."""
        cached = self.__dict__.get("_cuts")
        if cached is None:
            t = Fraction(repr(self.plan.segment_time))
            cached = [self.t0 + math.ceil(i * t / self.time_base) for i in range(1, self.plan.count)]
            object.__setattr__(self, "_cuts", cached)
        return cached

    def owner(self, pts: int) -> int:
        return bisect.bisect_right(self.cuts, pts)

    def pts_bounds(self, index: int) -> Tuple[Optional[int], Optional[int]]:
        """Owned pts range ``[lo, hi)`` of a segment in stream units (None = open end)."""
        if not 0 <= index < self.plan.count:
            raise IndexError(f"segment {index} outside plan of {self.plan.count}")
        lo = None if index == 0 else self.cuts[index - 1]
        hi = None if index == self.plan.count - 1 else self.cuts[index]
        return lo, hi


_SEGMENT_FIELDS = ("index", "chunk", "frames", "pts_lo", "pts_hi")


def load_split_index(manifest: "Manifest") -> dict:
    uri = layout.split_index(manifest.work)
    if not storage.exists(uri):
        raise VsrError(ErrorCode.STAGE_FAILED, f"split has not run for job {manifest.job_id}: split/index.json missing")
    index = read_record(uri, "split/index.json")
    segments = index.get("segments") if isinstance(index, dict) else None
    problem = None
    if not isinstance(segments, list) or len(segments) != manifest.plan.count:
        problem = f"expected {manifest.plan.count} segments"
    elif any(not isinstance(index.get(k), t) for k, t in (("frames", int), ("time_base", str), ("probe", dict))):
        problem = "frames, time_base or probe missing"
    else:
        for i, seg in enumerate(segments):
            if not isinstance(seg, dict) or seg.get("index") != i or any(k not in seg for k in _SEGMENT_FIELDS):
                problem = f"segment {i} is incomplete"
                break
    if problem:
        raise corrupt(f"split/index.json is damaged: {problem}")
    return index


def read_record(uri: str, label: str) -> object:
    """A JSON record a stage stored: damaged (not JSON) is ``corrupt_intermediate``."""
    try:
        return storage.read_json(uri)
    except FileNotFoundError:
        raise corrupt(f"{label} is missing") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise corrupt(f"{label} is not valid JSON ({exc})") from None
