"""The job manifest as the worker stages read it, without importing pydantic.

A split or merge process spends about a tenth of a second importing pydantic and building the
contract's models: as long as remuxing a hundred megabytes. The manifests the stages read
were written by the API or ``vsr-worker run`` from a validated ``vsr_client.contract.Manifest``
(``model_dump(mode="json")``), so they are canonical JSON. :func:`fast_view` accepts exactly
such documents: every field of the exact JSON type and within the model's constraints, no
unknown key. Anything else it declines (None), and the reader (the worker's
``load_manifest``) then validates with the pydantic model itself, which accepts or rejects it
with its usual message. The fast path
is therefore never more lenient than the model: tests run both over the same valid and
invalid documents and require the same verdicts and values.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Optional

from vsr_client.codes import DEFAULT_DEVICE, DEFAULT_MODEL, MANIFEST_VERSION, SCALES

_JOB_ID = re.compile(r"^[A-Za-z0-9_.-]+$")
_TASKS = ("inference", "debug")
_CODECS = ("libx264", "libx265")
_BIT_DEPTHS = ("source", "8", "10")
_TOP = {
    "version",
    "job_id",
    "source",
    "work",
    "output",
    "scale",
    "model",
    "device",
    "task",
    "keep_intermediates",
    "plan",
    "encode",
}


@dataclass(frozen=True)
class PlanView:
    """``SegmentPlan``'s fields."""

    duration: float
    segment_time: float
    count: int


@dataclass(frozen=True)
class EncodeView:
    """``EncodeSettings``'s fields."""

    codec: str = "libx264"
    crf: int = 18
    preset: str = "medium"
    bit_depth: str = "source"


@dataclass(frozen=True)
class ManifestView:
    """``Manifest``'s fields, with the same names and values."""

    job_id: str
    source: str
    work: str
    output: str
    plan: PlanView
    version: int = MANIFEST_VERSION
    scale: int = 2
    model: str = DEFAULT_MODEL
    device: str = DEFAULT_DEVICE
    task: str = "inference"
    keep_intermediates: bool = False
    encode: EncodeView = EncodeView()


def _is_int(value: Any) -> bool:
    return type(value) is int  # bool is a subclass of int: not accepted here


def _is_number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _text(value: Any, max_length: Optional[int] = None) -> bool:
    return type(value) is str and len(value) >= 1 and (max_length is None or len(value) <= max_length)


def _plan(raw: Any) -> Optional[PlanView]:
    if type(raw) is not dict or set(raw) != {"duration", "segment_time", "count"}:
        return None
    duration, segment_time, count = raw["duration"], raw["segment_time"], raw["count"]
    if not (_is_number(duration) and duration >= 0 and _is_number(segment_time) and segment_time > 0):
        return None
    if not (_is_int(count) and count >= 1):
        return None
    return PlanView(float(duration), float(segment_time), count)


def _encode(raw: Any) -> Optional[EncodeView]:
    if type(raw) is not dict or not set(raw) <= {"codec", "crf", "preset", "bit_depth"}:
        return None
    view = EncodeView(**raw)
    ok = (
        view.codec in _CODECS
        and _is_int(view.crf)
        and 0 <= view.crf <= 51
        and type(view.preset) is str
        and view.bit_depth in _BIT_DEPTHS
    )
    return view if ok else None


def fast_view(raw: Any) -> Optional[ManifestView]:
    """The manifest if ``raw`` is canonical (see the module doc), else None."""
    from vsr_client.devices import DEVICES  # pydantic-free, like this module

    if type(raw) is not dict or not set(raw) <= _TOP:
        return None
    if not all(k in raw for k in ("job_id", "source", "work", "output", "plan")):
        return None
    if raw.get("version", MANIFEST_VERSION) != MANIFEST_VERSION or not _is_int(raw.get("version", MANIFEST_VERSION)):
        return None
    if not (_text(raw["job_id"], 128) and _JOB_ID.match(raw["job_id"])):
        return None
    if not all(_text(raw[k]) for k in ("source", "work", "output")):
        return None
    scale, model, device = raw.get("scale", 2), raw.get("model", DEFAULT_MODEL), raw.get("device", DEFAULT_DEVICE)
    if not (_is_int(scale) and scale in SCALES and type(model) is str and type(device) is str and device in DEVICES):
        return None
    task, keep = raw.get("task", "inference"), raw.get("keep_intermediates", False)
    if task not in _TASKS or type(task) is not str or type(keep) is not bool:
        return None
    plan = _plan(raw["plan"])
    encode = _encode(raw.get("encode", {}))
    if plan is None or encode is None:
        return None
    return ManifestView(
        version=MANIFEST_VERSION,
        job_id=raw["job_id"],
        source=raw["source"],
        work=raw["work"].rstrip("/"),  # as Manifest's validator does
        output=raw["output"],
        scale=scale,
        model=model,
        device=device,
        task=task,
        keep_intermediates=keep,
        plan=plan,
        encode=encode,
    )
