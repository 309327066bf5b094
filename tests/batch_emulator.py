"""A small AWS Batch emulator for tests: runs the jobs the Lambda really submitted.

It reads each SubmitJob request as sent (job definition, parameters, container overrides,
array size, dependencies), takes the command from the registered job definition with
``Ref::`` parameters substituted as Batch does, and runs it as a subprocess in dependency
order, array children with ``AWS_BATCH_JOB_ARRAY_INDEX``. A fault plan can kill a child on
its first attempt (as a spot reclaim would); the retry then runs like Batch's retry
strategy does for ``Host EC2*`` terminations.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

from vsr_client.jobgraph import ARRAY_INDEX_ENV
from vsr_worker.engine.local_scheduler import resolve_command


@dataclass
class Attempt:
    job: str
    index: int | None
    exit_code: int
    log: str


@dataclass
class BatchEmulator:
    batch: Any  # boto3 Batch client on the same (moto) endpoint the Lambda used
    env: dict[str, str]
    faults: dict[tuple[str, int | None], dict[str, str]] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)

    def _definition(self, ref: str) -> dict:
        found = self.batch.describe_job_definitions(jobDefinitions=[ref])["jobDefinitions"]
        if not found:  # a name rather than an ARN
            found = self.batch.describe_job_definitions(jobDefinitionName=ref, status="ACTIVE")["jobDefinitions"]
        return found[-1]

    def command(self, request: dict) -> list[str]:
        definition = self._definition(request["jobDefinition"])
        params = {**definition.get("parameters", {}), **request.get("parameters", {})}
        command = request.get("containerOverrides", {}).get("command") or definition["containerProperties"]["command"]
        return [params[c[len("Ref::") :]] if c.startswith("Ref::") else c for c in command]

    def environment(self, request: dict) -> dict[str, str]:
        definition = self._definition(request["jobDefinition"])
        env = {e["name"]: e["value"] for e in definition["containerProperties"].get("environment", [])}
        env.update({e["name"]: e["value"] for e in request.get("containerOverrides", {}).get("environment", [])})
        return env

    def run(self, requests: list[dict], job_ids: dict[str, str]) -> None:
        """Run ``requests`` (SubmitJob parameters) in dependency order.

        ``job_ids`` maps each request's jobName to the id Batch returned, which is what
        other requests' ``dependsOn`` refer to.
        """
        done: set[str] = set()
        pending = list(requests)
        while pending:
            ready = [r for r in pending if {d["jobId"] for d in r.get("dependsOn", [])} <= done]
            assert ready, f"dependency cycle or unknown dependency in {[r['jobName'] for r in pending]}"
            for request in ready:
                size = request.get("arrayProperties", {}).get("size", 0)
                for index in range(size) if size else [None]:
                    self._run_child(request, index)
                done.add(job_ids[request["jobName"]])
                pending.remove(request)

    def _run_child(self, request: dict, index: int | None) -> None:
        env = {**os.environ, **self.env, **self.environment(request)}
        env.pop(ARRAY_INDEX_ENV, None)
        if index is not None:
            env[ARRAY_INDEX_ENV] = str(index)
        stage = self.command(request)[1]
        fault = self.faults.get((stage, index))
        for attempt_env in ([fault] if fault else []) + [{}]:
            proc = subprocess.run(
                resolve_command(self.command(request)),
                env={**env, **attempt_env},
                capture_output=True,
                text=True,
                timeout=600,
                stdin=subprocess.DEVNULL,
                executable=None,
            )
            self.attempts.append(Attempt(request["jobName"], index, proc.returncode, proc.stderr))
            if proc.returncode == 0:
                return
            if not attempt_env:
                raise AssertionError(
                    f"{request['jobName']}[{index}] failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
                )


def python_worker_env() -> dict[str, str]:
    """Children run this interpreter's worker (the image's `vsr-worker` entry point)."""
    return {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
