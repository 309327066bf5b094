"""One local job in a process of its own: ``python -m vsr_api.local.job_process RUN_FILE``.

Started by the local job runner as the leader of a new process group; runs the job graph in
the run file through the worker's local scheduler (whose stage processes join the group) and
writes the outcome, ``{"state", "code", "message"}``, next to the run file, by rename. A run
with no outcome file did not finish: the next server start resumes it from its stored parts.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import traceback
from pathlib import Path

from vsr_api.local.process_groups import PARENT_ENV, die_with_parent
from vsr_client.contract import ErrorCode, VsrError
from vsr_client.jobgraph import StageSpec

JOB_NICENESS = 10  # added to the server's; the stage processes inherit it


def outcome_path(run_file: Path) -> Path:
    return run_file.with_suffix(".outcome.json")


def write_outcome(run_file: Path, outcome: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=run_file.parent)
    with os.fdopen(fd, "w") as fh:
        json.dump(outcome, fh)
    os.replace(tmp, outcome_path(run_file))


def _end_group(_signum: int, _frame: object) -> None:
    # SIGTERM (cancel, shutdown, or the server's death): take every stage process along.
    os.killpg(os.getpgrp(), signal.SIGKILL)


def main(argv: list[str]) -> int:
    run_file = Path(argv[0])
    signal.signal(signal.SIGTERM, _end_group)
    die_with_parent(int(os.environ[PARENT_ENV]))
    # Jobs are batch work: on a busy machine the API that reports on them answers first.
    os.nice(JOB_NICENESS)
    run = json.loads(run_file.read_text())

    from vsr_worker.engine.local_run import execute_graph

    try:
        graph = [StageSpec.model_validate(spec) for spec in run["graph"]]
        execute_graph(graph, Path(run["work"]), run["segments"], jobs=run["jobs"])
        outcome = {"state": "succeeded"}
    except VsrError as exc:
        outcome = {"state": "failed", "code": exc.code.value, "message": exc.message}
    except Exception as exc:
        traceback.print_exc()
        outcome = {"state": "failed", "code": ErrorCode.INTERNAL.value, "message": f"{type(exc).__name__}: {exc}"}
    print(f"job {run['job_id']}: {json.dumps(outcome)}", file=sys.stderr, flush=True)
    write_outcome(run_file, outcome)
    return 0 if outcome["state"] == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
