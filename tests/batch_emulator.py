"""A small AWS Batch emulator for tests: runs the jobs the Lambda really submitted, the way the
job definitions registered in moto (the stack's own, see tests/api/moto_world.py) declare.

For each SubmitJob request as sent it does what Batch does with the registered definition:
the command with ``Ref::`` parameters substituted; the container environment (the image's,
then the definition's, then the request's overrides, then Batch's ``AWS_BATCH_*`` variables);
the job role's credentials; array children with ``AWS_BATCH_JOB_ARRAY_INDEX``; dependencies
in order (a job whose dependency failed fails with "Dependent Job failed" and never runs); and
the retry strategy (attempts, ``evaluateOnExit`` rules, first match wins, no match retries).
Each container is a subprocess of this interpreter, which stands in for the image.

What a container would get that this host cannot give, a GPU or ``/dev/neuron*`` devices, is
not faked: the child runs without it and its attempt lists what was missing, so what runs is
the worker's own device check. Outcomes are written into moto's Batch backend (status, status
reason, exit code), so the API's DescribeJobs/ListJobs see what happened. A fault plan can kill
a child on its first attempt as a spot reclaim does (status reason ``Host EC2 ... terminated``).
"""

from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

from vsr_client.jobgraph import ARRAY_INDEX_ENV
from vsr_worker.engine.local_scheduler import resolve_command

# What Batch says about a container that ran and exited, and about a reclaimed spot host.
EXITED = "Essential container in task exited"
HOST_TERMINATED = "Host EC2 (instance i-0emulated00000000) terminated."
DEPENDENCY_FAILED = "Dependent Job failed"


@dataclass
class Attempt:
    job: str
    index: int | None
    number: int
    exit_code: int
    status_reason: str
    log: str
    unprovided: list[str]  # requirements this host could not give the container
    env: dict[str, str] = field(repr=False)


def _rule_matches(rule: dict[str, str], exit_code: int, status_reason: str, reason: str) -> bool:
    """evaluateOnExit: every condition the rule names must match (patterns may end in '*')."""
    checks = (("onExitCode", str(exit_code)), ("onStatusReason", status_reason), ("onReason", reason))
    return all(fnmatch.fnmatchcase(value, rule[key]) for key, value in checks if key in rule)


def retry_action(rules: list[dict[str, str]], exit_code: int, status_reason: str, reason: str = "") -> str:
    """RETRY or EXIT: the first matching rule's action; none matching retries (Batch's rule)."""
    for rule in rules:
        if _rule_matches(rule, exit_code, status_reason, reason):
            return rule["action"].upper()
    return "RETRY"


@dataclass
class BatchEmulator:
    batch: Any  # boto3 Batch client on the same (moto) endpoint the Lambda used
    image_env: dict[str, str]  # the image's environment (PATH, PYTHONPATH, the endpoint, ...)
    role_credentials: dict[str, dict[str, str]] = field(default_factory=dict)  # job role -> env
    faults: dict[tuple[str, int | None], dict[str, str]] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    status: dict[str, str] = field(default_factory=dict)  # jobName -> SUCCEEDED | FAILED

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
        """The definition's environment, then the request's overrides."""
        container = self._definition(request["jobDefinition"])["containerProperties"]
        env = {e["name"]: e["value"] for e in container.get("environment", [])}
        env.update({e["name"]: e["value"] for e in request.get("containerOverrides", {}).get("environment", [])})
        return env

    @staticmethod
    def unprovided(container: dict) -> list[str]:
        """Declared requirements this host cannot satisfy (never faked)."""
        missing = []
        gpus = sum(int(r["value"]) for r in container.get("resourceRequirements", []) if r["type"] == "GPU")
        if gpus:
            missing.append(f"GPU x{gpus}")  # no GPU is isolated and mapped here
        for device in container.get("linuxParameters", {}).get("devices", []):
            if not os.path.exists(device["hostPath"]):
                missing.append(device["hostPath"])
        return missing

    def run(self, requests: list[dict], job_ids: dict[str, str]) -> dict[str, str]:
        """Run ``requests`` (SubmitJob parameters) in dependency order; jobName -> final status.

        ``job_ids`` maps each request's jobName to the id Batch returned, which is what other
        requests' ``dependsOn`` refer to.
        """
        by_id = {job_ids[r["jobName"]]: r["jobName"] for r in requests}
        pending = list(requests)
        while pending:
            ready = [r for r in pending if all(by_id[d["jobId"]] in self.status for d in r.get("dependsOn", []))]
            assert ready, f"dependency cycle or unknown dependency in {[r['jobName'] for r in pending]}"
            for request in ready:
                job_id = job_ids[request["jobName"]]
                if any(self.status[by_id[d["jobId"]]] != "SUCCEEDED" for d in request.get("dependsOn", [])):
                    self.report(job_id, "FAILED", DEPENDENCY_FAILED, None)
                    self.status[request["jobName"]] = "FAILED"
                else:
                    self.status[request["jobName"]] = self._run_job(request, job_id)
                pending.remove(request)
        return self.status

    def _run_job(self, request: dict, job_id: str) -> str:
        size = request.get("arrayProperties", {}).get("size", 0)
        if not size:
            return self._run_container(request, job_id, None)
        children = [self._run_container(request, f"{job_id}:{i}", i) for i in range(size)]
        status = "SUCCEEDED" if all(c == "SUCCEEDED" for c in children) else "FAILED"
        self.report(job_id, status, None if status == "SUCCEEDED" else "Array Child Job failed", None)
        return status

    def _run_container(self, request: dict, job_id: str, index: int | None) -> str:
        definition = self._definition(request["jobDefinition"])
        container = definition["containerProperties"]
        retry = definition.get("retryStrategy", {})
        env = {
            **self.image_env,
            **self.role_credentials.get(container.get("jobRoleArn", ""), {}),
            **self.environment(request),
            "AWS_BATCH_JOB_ID": job_id,
            "AWS_BATCH_JQ_NAME": request["jobQueue"].rsplit("/", 1)[-1],
        }
        if index is not None:
            env[ARRAY_INDEX_ENV] = str(index)
        command = self.command(request)
        fault = self.faults.get((command[1], index))
        unprovided = self.unprovided(container)
        for number in range(1, int(retry.get("attempts", 1)) + 1):
            injected = fault if number == 1 and fault else {}
            attempt_env = {**env, **injected, "AWS_BATCH_JOB_ATTEMPT": str(number)}
            proc = subprocess.run(
                resolve_command(command),
                env=attempt_env,
                capture_output=True,
                text=True,
                timeout=600,
                stdin=subprocess.DEVNULL,
            )
            status_reason = HOST_TERMINATED if injected else EXITED
            self.attempts.append(
                Attempt(request["jobName"], index, number, proc.returncode, status_reason, proc.stderr, unprovided, env)
            )
            if proc.returncode == 0:
                self.report(job_id, "SUCCEEDED", status_reason, 0)
                return "SUCCEEDED"
            if retry_action(retry.get("evaluateOnExit", []), proc.returncode, status_reason) == "EXIT":
                break
        self.report(job_id, "FAILED", status_reason, proc.returncode)
        return "FAILED"

    def report(self, job_id: str, status: str, reason: str | None, exit_code: int | None) -> None:
        """Write an outcome into moto's Batch backend (the server runs in this process)."""
        from moto.batch.models import batch_backends

        arn = self.batch.describe_jobs(jobs=[job_id.split(":")[0]])["jobs"][0]["jobArn"]
        _, _, _, region, account, _ = arn.split(":", 5)
        job = batch_backends[account][region]._jobs[job_id]
        job.status, job.job_stopped_reason, job.exit_code = status, reason, exit_code

    def failures(self) -> list[str]:
        """One line per failed attempt, with the end of its log: for assertion messages."""
        return [f"{a.job}[{a.index}] exit {a.exit_code}:\n{a.log[-3000:]}" for a in self.attempts if a.exit_code]


def python_worker_env() -> dict[str, str]:
    """The image's environment: this interpreter's worker (the image's ``vsr-worker``), its
    models, and no other variable of the test process."""
    env = {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    for name in ("PATH", "HOME", "LANG", "TMPDIR", "XDG_CACHE_HOME", "VSR_MODEL_CACHE"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env
