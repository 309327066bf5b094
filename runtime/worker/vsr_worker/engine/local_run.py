"""``vsr-worker run``: one video through split -> upscale[N] -> merge on this machine."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

from vsr_client.contract import (
    DEFAULT_DEVICE,
    DEFAULT_MODEL,
    EncodeSettings,
    ErrorCode,
    Manifest,
    VsrError,
    output_container,
    plan_segments,
    validate_scale,
    validate_segment_time,
)
from vsr_client.devices import DEVICE_ENV
from vsr_client.jobgraph import THREADS_ENV, StageSpec, build_job_graph
from vsr_worker import layout, storage
from vsr_worker.engine.breakdown import collect, format_breakdown
from vsr_worker.engine.local_scheduler import LocalScheduler, StageFailure
from vsr_worker.engine.progress_view import ProgressView
from vsr_worker.host_devices import host_device
from vsr_worker.media.probe import probe
from vsr_worker.models.registry import model_info

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    output: Path
    frames: int
    segments: int
    seconds: float
    work: Path
    breakdown: Optional[dict] = None


def default_jobs(segments: int) -> int:
    return plan_parallelism(segments)[0]


def plan_parallelism(segments: int, jobs: Optional[int] = None, cores: Optional[int] = None) -> Tuple[int, int]:
    """(processes, threads per process) for the upscale stage on ``cores`` cores.

    One process per segment up to the core count, the cores shared out among them: every
    core runs inference whether the video has one segment or many. (Inside a process the
    threads run tiles in parallel, see the ncnn backend, so one long segment uses all cores.)
    """
    cores = max(1, cores or os.cpu_count() or 1)
    n_jobs = max(1, jobs or min(segments, cores))
    return n_jobs, max(1, cores // min(n_jobs, max(1, segments)))


def run_local(
    source: Path,
    output: Path,
    scale: int = 2,
    segment_time: float = 60.0,
    model: str = DEFAULT_MODEL,
    jobs: Optional[int] = None,
    work_dir: Optional[Path] = None,
    keep_work: bool = False,
    overwrite: bool = False,
    encode: Optional[EncodeSettings] = None,
    task: str = "inference",
    show_progress: bool = True,
    device: str = DEFAULT_DEVICE,
) -> RunResult:
    started = time.monotonic()
    validate_scale(scale)
    validate_segment_time(segment_time)
    output_container(str(output))  # the extension decides the container: refuse others before any work
    info_model = model_info(model)
    # Resolved here, before any work: a device this host lacks fails now, not in every child.
    device = host_device(os.environ.get(DEVICE_ENV) or device, bool(info_model.ncnn))
    source = source.expanduser().resolve()
    output = output.expanduser().resolve()
    if output.exists() and not overwrite:
        raise VsrError(ErrorCode.OUTPUT_EXISTS, f"output exists: {output} (pass --overwrite to replace it)", "output")
    if output == source:
        raise VsrError(ErrorCode.INVALID_ARGUMENT, "output must differ from the input", "output")
    info = probe(source)
    plan = plan_segments(info.duration, segment_time)
    job_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    work = (work_dir or output.parent / f".vsr-work-{job_id}").resolve()
    work.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(
        job_id=job_id,
        source=str(source),
        work=str(work),
        output=str(output),
        scale=scale,
        model=model,
        device=device,
        task=task,
        keep_intermediates=keep_work or work_dir is not None,
        plan=plan,
        encode=encode or EncodeSettings(),
    )
    manifest_uri = layout.manifest(str(work))
    storage.write_json(manifest_uri, manifest.model_dump(mode="json"))
    n_jobs = jobs or default_jobs(plan.count)
    graph = build_job_graph(manifest_uri, plan.count)
    log.info(
        "job %s: %s (%dx%d, %.2fs) -> %d segment(s) of %gs, x%d with %s on %s, %d process(es)",
        job_id,
        source.name,
        info.width,
        info.height,
        info.duration,
        plan.count,
        segment_time,
        scale,
        model,
        device,
        n_jobs,
    )

    prepared = time.monotonic() - started
    view = ProgressView(work / "progress") if show_progress else None
    total_set = False

    def tick() -> None:
        nonlocal total_set
        if view is None:
            return
        if not total_set and (work / "split" / "index.json").exists():
            view.set_total(storage.read_json(layout.split_index(str(work)))["frames"])
            total_set = True
        view.tick()

    keep = keep_work or task == "debug" or work_dir is not None
    process_seconds: Dict[Tuple[str, int], float] = {}
    try:
        process_seconds = execute_graph(graph, work, plan.count, jobs=n_jobs, on_tick=tick)
    except VsrError as error:
        if error.code in (ErrorCode.STAGE_FAILED, ErrorCode.INTERNAL, ErrorCode.CORRUPT_INTERMEDIATE):
            keep = True  # an internal failure: keep logs and intermediates to look at
        raise
    finally:
        if view is not None:
            view.close()
        result = storage.read_json(layout.result(str(work))) if (work / "result.json").exists() else None
        breakdown = None
        if result is not None:
            # Where the time went: the stages' own records and the processes' wall times.
            breakdown = collect(work, process_seconds, time.monotonic() - started, {"prepare": prepared})
            if keep:
                storage.write_json(layout.timings(str(work)), breakdown)
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    final = Path(result["output"]) if result else output
    frames = result["frames"] if result else 0
    return RunResult(
        output=final,
        frames=frames,
        segments=plan.count,
        seconds=time.monotonic() - started,
        work=work,
        breakdown=breakdown,
    )


def execute_graph(
    graph: list[StageSpec],
    work: Path,
    segments: int,
    jobs: Optional[int] = None,
    on_tick: Optional[Callable[[], None]] = None,
) -> Dict[Tuple[str, int], float]:
    """Run a job graph whose manifest is already written, on this machine; returns each
    stage process's wall seconds.

    Shared by ``vsr-worker run`` and the local API server. A failed stage becomes a
    VsrError with the stage's own code (``stage_failed`` when it gave none); an exception
    raised by ``on_tick`` (a cancellation) stops the running stage's processes and propagates.
    """
    n_jobs, threads = plan_parallelism(segments, jobs)
    scheduler = LocalScheduler(work / "logs", jobs=n_jobs, env={THREADS_ENV: str(threads)}, on_tick=on_tick)
    try:
        scheduler.run(graph)
    except StageFailure as exc:
        raise _as_user_error(exc, work) from None
    return scheduler.process_seconds


def _as_user_error(exc: StageFailure, work: Path) -> VsrError:
    """A failed stage's one-line error, keeping its code and exit status."""
    msg = exc.message
    for code in ErrorCode:
        # The worker CLI prints "vsr-worker: error [code]: message"; VsrError's str is "[code] message".
        prefix = next((p for p in (f"[{code.value}]: ", f"[{code.value}] ") if p in msg), None)
        if prefix is not None:
            err = VsrError(code, msg.split(prefix, 1)[1])
            break
    else:
        err = VsrError(ErrorCode.STAGE_FAILED, f"{exc} (logs in {work / 'logs'})")
    return err


def main_run(args) -> int:  # called by the CLI
    if args.tile is not None:
        os.environ["VSR_TILE"] = str(args.tile)  # the upscale children inherit it
    result = run_local(
        Path(args.input),
        Path(args.output),
        scale=args.scale,
        segment_time=args.segment_time,
        model=args.model,
        jobs=args.jobs,
        work_dir=Path(args.work_dir) if args.work_dir else None,
        keep_work=args.keep_work,
        overwrite=args.overwrite,
        task=args.task,
        device=args.device,
        encode=EncodeSettings(codec=args.codec, crf=args.crf, preset=args.preset, bit_depth=args.bit_depth),
        show_progress=not args.quiet,
    )
    print(
        f"wrote {result.output} ({result.frames} frames, {result.segments} segment(s), {result.seconds:.1f}s)",
        file=sys.stdout,
    )
    if args.task == "debug" and result.breakdown:
        print(format_breakdown(result.breakdown), file=sys.stderr)
        print(f"(breakdown as JSON: {layout.timings(str(result.work))})", file=sys.stderr)
    return 0
