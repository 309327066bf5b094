"""Where a local run's time went, from the records its stages wrote.

Every stage stores its phases (``vsr_worker.timings``) in its final progress record; the
local scheduler measures each process's wall time. ``collect`` puts both together per stage
process, with totals per phase; ``format_breakdown`` is what ``vsr-worker run --task debug``
prints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Tuple

STAGE_ORDER = ("split", "upscale", "merge")
# Phases in pipeline order; anything else a stage records is listed after these.
PHASE_ORDER = (
    "startup",
    "probe",
    "model_load",
    "demux",
    "decode",
    "colour_in",
    "inference",
    "colour_out",
    "encode",
    "mux",
    "storage",
)


def _records(progress_dir: Path) -> List[dict]:
    records = []
    for path in sorted(progress_dir.glob("*.json")):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return [r for r in records if r.get("stage") in STAGE_ORDER]


def collect(
    work: Path, process_seconds: Dict[Tuple[str, int], float], wall_seconds: float, run_seconds: Dict[str, float]
) -> dict:
    """The breakdown of one run whose stages wrote their records under ``work``."""
    stages = []
    totals: Dict[str, float] = {}
    busy_weighted: Dict[str, float] = {}
    pipeline_total = 0.0
    records = sorted(_records(work / "progress"), key=lambda r: (STAGE_ORDER.index(r["stage"]), r.get("index", 0)))
    for rec in records:
        timings = rec.get("timings") or {}
        seconds = timings.get("seconds", {})
        for phase, value in seconds.items():
            totals[phase] = totals.get(phase, 0.0) + value
        pipeline = timings.get("pipeline_seconds") or 0.0
        for thread, fraction in (timings.get("busy_fraction") or {}).items():
            busy_weighted[thread] = busy_weighted.get(thread, 0.0) + fraction * pipeline
        pipeline_total += pipeline
        stages.append(
            {
                "stage": rec["stage"],
                "index": rec.get("index", 0),
                "frames": rec.get("done"),
                "process_seconds": _round(process_seconds.get((rec["stage"], rec.get("index", 0)))),
                **timings,
            }
        )
    out: dict = {
        "wall_seconds": round(wall_seconds, 3),
        "run": {k: round(v, 3) for k, v in run_seconds.items()},
        "stage_process_seconds": {
            stage: round(sum(v for (s, _), v in process_seconds.items() if s == stage), 3)
            for stage in STAGE_ORDER
            if any(s == stage for s, _ in process_seconds)
        },
        "phase_seconds": {k: round(totals[k], 3) for k in _ordered(totals)},
        "stages": stages,
    }
    if pipeline_total > 0:
        out["upscale_busy_fraction"] = {k: round(v / pipeline_total, 3) for k, v in sorted(busy_weighted.items())}
    return out


def _round(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 3)


def _ordered(phases: Dict[str, float]) -> List[str]:
    return [p for p in PHASE_ORDER if p in phases] + sorted(p for p in phases if p not in PHASE_ORDER)


def format_breakdown(breakdown: dict) -> str:
    """A few lines a person reads: wall time, per-stage processes, phase totals, busy threads."""
    lines = [f"time: {breakdown['wall_seconds']:.2f}s wall"]
    run = ", ".join(f"{k} {v:.2f}s" for k, v in breakdown.get("run", {}).items())
    if run:
        lines.append(f"  run: {run}")
    procs = ", ".join(f"{k} {v:.2f}s" for k, v in breakdown.get("stage_process_seconds", {}).items())
    if procs:
        lines.append(f"  stage processes: {procs}")
    for stage in breakdown.get("stages", []):
        seconds = stage.get("seconds", {})
        parts = ", ".join(f"{k} {seconds[k]:.2f}s" for k in _ordered(seconds))
        lines.append(f"  {stage['stage']}[{stage['index']}]: {parts}")
    phases = breakdown.get("phase_seconds", {})
    if phases:
        lines.append("  all stages: " + ", ".join(f"{k} {v:.2f}s" for k, v in phases.items()))
    busy = breakdown.get("upscale_busy_fraction")
    if busy:
        lines.append("  upscale threads busy: " + ", ".join(f"{k} {v:.0%}" for k, v in busy.items()))
    return "\n".join(lines)
