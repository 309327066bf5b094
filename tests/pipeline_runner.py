"""Runs a job's graph in this process: the same command lines as Batch and the local
scheduler, each through the worker's CLI entry point, with AWS_BATCH_JOB_ARRAY_INDEX set
per array child. Fast enough to push many small videos through every stage."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from unittest import mock

from vsr_client.contract import Manifest, plan_segments
from vsr_client.jobgraph import ARRAY_INDEX_ENV, WORKER_COMMAND, StageSpec, build_job_graph
from vsr_worker import cli, layout, storage
from vsr_worker.media.probe import probe


def write_manifest(
    source: Path,
    output: Path,
    work: Path,
    scale: int = 2,
    segment_time: float = 1.0,
    model: str = "bicubic",
    keep_intermediates: bool = False,
) -> str:
    """The job's manifest under ``work``; returns its URI."""
    info = probe(source)
    manifest = Manifest(
        job_id=uuid.uuid4().hex[:12],
        source=str(source),
        work=str(work),
        output=str(output),
        scale=scale,
        model=model,
        plan=plan_segments(info.duration, segment_time),
        keep_intermediates=keep_intermediates,
    )
    uri = layout.manifest(str(work))
    storage.write_json(uri, manifest.model_dump(mode="json"))
    return uri


def run_stage(stage: StageSpec, index: int | None = None) -> int:
    """One stage (one array child when ``index`` is given) through the CLI; its exit code."""
    assert stage.command[0] == WORKER_COMMAND
    env = {ARRAY_INDEX_ENV: str(index)} if index is not None else {}
    with mock.patch.dict(os.environ, env, clear=False):
        if index is None:
            os.environ.pop(ARRAY_INDEX_ENV, None)
        return cli.main(stage.command[1:])


def run_graph(manifest_uri: str, stages: tuple[str, ...] = ("split", "upscale", "merge")) -> None:
    """The named stages of the job's graph, in order, every array child; each must succeed."""
    count = Manifest.model_validate(storage.read_json(manifest_uri)).plan.count
    for stage in build_job_graph(manifest_uri, count):
        if stage.name not in stages:
            continue
        for index in range(stage.array_size) if stage.array_size else [None]:
            code = run_stage(stage, index)
            assert code == 0, f"{stage.name}[{index}] exited {code}"


def run_inline(
    source: Path, output: Path, work: Path, scale: int = 2, segment_time: float = 1.0, model: str = "bicubic"
) -> dict:
    run_graph(write_manifest(source, output, work, scale, segment_time, model))
    return storage.read_json(layout.result(str(work)))
