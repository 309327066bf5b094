"""Runs a job's graph in this process: the same command lines as Batch and the local
scheduler, each through the worker's CLI entry point, with AWS_BATCH_JOB_ARRAY_INDEX set
per array child. Fast enough to push many small videos through every stage."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from unittest import mock

from vsr_client.contract import Manifest, plan_segments
from vsr_client.jobgraph import ARRAY_INDEX_ENV, WORKER_COMMAND, build_job_graph
from vsr_worker import cli, layout, storage
from vsr_worker.media.probe import probe


def run_inline(
    source: Path, output: Path, work: Path, scale: int = 2, segment_time: float = 1.0, model: str = "bicubic"
) -> dict:
    info = probe(source)
    plan = plan_segments(info.duration, segment_time)
    manifest = Manifest(
        job_id=uuid.uuid4().hex[:12],
        source=str(source),
        work=str(work),
        output=str(output),
        scale=scale,
        model=model,
        plan=plan,
    )
    uri = layout.manifest(str(work))
    storage.write_json(uri, manifest.model_dump(mode="json"))
    for stage in build_job_graph(uri, plan.count):
        assert stage.command[0] == WORKER_COMMAND
        for index in range(stage.array_size) if stage.array_size else [None]:
            env = {ARRAY_INDEX_ENV: str(index)} if index is not None else {}
            with mock.patch.dict(os.environ, env, clear=False):
                if index is None:
                    os.environ.pop(ARRAY_INDEX_ENV, None)
                code = cli.main(stage.command[1:])
            assert code == 0, f"{stage.name}[{index}] exited {code}"
    return storage.read_json(layout.result(str(work)))
