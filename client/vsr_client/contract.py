"""The service contract: error codes, exit codes, segment planning and the job manifest.

This module must stay importable on Python 3.10 (the Inf1 worker image imports it). The
codes and defaults live in :mod:`vsr_client.codes` (no pydantic: worker stages start faster
without it) and are re-exported here.
"""

from __future__ import annotations

import math
import posixpath
from fractions import Fraction
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vsr_client.codes import (
    BAD_INPUT_EXIT_CODES,
    DEFAULT_DEVICE,
    DEFAULT_MODEL,
    DEFAULT_SEGMENT_TIME,
    ERROR_EXIT_CODES,
    MANIFEST_VERSION,
    MEDIA_TYPES,
    OUTPUT_FORMATS,
    SCALES,
    ErrorCode,
    ExitCode,
    VsrError,
)

__all__ = [
    "BAD_INPUT_EXIT_CODES",
    "DEFAULT_DEVICE",
    "DEFAULT_MODEL",
    "DEFAULT_SEGMENT_TIME",
    "ERROR_EXIT_CODES",
    "MANIFEST_VERSION",
    "MEDIA_TYPES",
    "OUTPUT_FORMATS",
    "SCALES",
    "EncodeSettings",
    "ErrorCode",
    "ExitCode",
    "Manifest",
    "SegmentPlan",
    "VsrError",
    "output_container",
    "plan_segments",
    "validate_scale",
    "validate_segment_time",
]


def _exact(value: float) -> Fraction:
    """A float as the decimal the user wrote (1.1 -> 11/10), not its binary expansion."""
    return Fraction(repr(float(value)))


def validate_scale(scale: int) -> int:
    if scale not in SCALES:
        raise VsrError(ErrorCode.INVALID_SCALE, f"scale must be 2 or 4, got {scale!r}", "scale")
    return int(scale)


def output_container(name: str, field: str = "output", code: ErrorCode = ErrorCode.INVALID_ARGUMENT) -> str:
    """The container (FFmpeg format name) an output's extension names; any other is refused."""
    suffix = posixpath.splitext(name)[1].lower()
    if suffix not in OUTPUT_FORMATS:
        raise VsrError(
            code,
            f"{field} {posixpath.basename(name)!r}: the extension decides the container; "
            f"use {', '.join(OUTPUT_FORMATS)}",
            field,
        )
    return OUTPUT_FORMATS[suffix]


def validate_segment_time(segment_time: float) -> float:
    if not isinstance(segment_time, (int, float)) or not math.isfinite(segment_time) or segment_time <= 0:
        raise VsrError(
            ErrorCode.INVALID_SEGMENT_TIME,
            f"segment_time must be a positive number of seconds, got {segment_time!r}",
            "segment_time",
        )
    return float(segment_time)


class SegmentPlan(BaseModel):
    """How a video is cut: ``count`` segments of ``segment_time`` seconds each.

    Segment ``i`` owns the frames whose presentation time, measured from the first video
    frame, lies in ``[i*T, (i+1)*T)``; the first segment also owns anything earlier and the
    last one anything later, so every frame has exactly one owner.
    """

    model_config = ConfigDict(frozen=True)

    duration: float = Field(ge=0, description="seconds of video planned for")
    segment_time: float = Field(gt=0)
    count: int = Field(ge=1)

    def bounds(self, index: int) -> tuple[Optional[Fraction], Optional[Fraction]]:
        """Owned range of segment ``index`` in seconds from the first frame (None = open)."""
        if not 0 <= index < self.count:
            raise IndexError(f"segment {index} outside plan of {self.count}")
        t = _exact(self.segment_time)
        lo = None if index == 0 else index * t
        hi = None if index == self.count - 1 else (index + 1) * t
        return lo, hi


def plan_segments(duration: float, segment_time: float) -> SegmentPlan:
    """``ceil(duration / segment_time)`` segments, at least one."""
    validate_segment_time(segment_time)
    if not math.isfinite(duration) or duration < 0:
        raise VsrError(ErrorCode.CORRUPT_INPUT, f"video duration is not usable: {duration!r}")
    count = max(1, math.ceil(_exact(duration) / _exact(segment_time)))
    return SegmentPlan(duration=duration, segment_time=segment_time, count=count)


class EncodeSettings(BaseModel):
    """Video encoder settings; identical for every segment so the parts join losslessly."""

    model_config = ConfigDict(frozen=True)

    codec: Literal["libx264", "libx265"] = "libx264"
    crf: int = Field(default=18, ge=0, le=51)
    preset: str = "medium"
    bit_depth: Literal["source", "8", "10"] = Field(
        default="source",
        description="'source' keeps 10-bit input 10-bit (High 10); '8' forces yuv420p",
    )


class Manifest(BaseModel):
    """Everything a worker stage needs, written once before any stage runs."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = MANIFEST_VERSION
    job_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")
    source: str = Field(min_length=1, description="URI of the source video")
    work: str = Field(min_length=1, description="URI prefix for this job's intermediates")
    output: str = Field(min_length=1, description="URI of the result")
    scale: Literal[2, 4] = 2
    model: str = DEFAULT_MODEL
    device: str = Field(
        default=DEFAULT_DEVICE,
        description="upscale backend (vsr_client.devices); the stack sets it from its accelerator",
    )
    task: Literal["inference", "debug"] = "inference"
    keep_intermediates: bool = Field(
        default=False, description="keep segments and parts after a successful merge (always with task=debug)"
    )
    plan: SegmentPlan
    encode: EncodeSettings = EncodeSettings()

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        from vsr_client.devices import DEVICES

        if value not in DEVICES:
            raise ValueError(f"unknown device {value!r}; expected one of {', '.join(DEVICES)}")
        return value

    @field_validator("work")
    @classmethod
    def _work_is_prefix(cls, value: str) -> str:
        return value.rstrip("/")
