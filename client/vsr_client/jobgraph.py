"""The job graph as data: split -> upscale[N] -> merge.

The same stage specs are run by the local scheduler (as subprocesses) and submitted to
AWS Batch (as jobs whose container command is ``StageSpec.command``). Keep it importable
on Python 3.10.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

WORKER_COMMAND = "vsr-worker"
ARRAY_INDEX_ENV = "AWS_BATCH_JOB_ARRAY_INDEX"
# Threads a stage may use (the cores it was given); the stack sets it from the stage's vCPUs.
THREADS_ENV = "VSR_THREADS"
# The tag every Batch job of one deployment carries (value: the stack's name); the API's IAM
# policy lets it terminate only jobs with its own value.
STACK_TAG = "vsr:stack"
# AWS Batch's limit on the children of one array job: the most segments a job can have.
MAX_ARRAY_SIZE = 10_000
# ``vsr-worker upscale --index 0,2,4``: one process upscales several segments, loading its
# model once. AWS Batch runs one child per segment (with the array index in the environment).
INDEX_FLAG = "--index"

StageName = Literal["split", "upscale", "merge"]
# Stages that need no accelerator: on AWS they run on the stack's small CPU compute environment.
CPU_STAGES: tuple[StageName, ...] = ("split", "merge")
# The stage whose end is the vsr job's end: it depends on every other stage, and AWS Batch fails
# a job whose dependency failed, so it reaches SUCCEEDED or FAILED exactly once per vsr job.
FINAL_STAGE: StageName = "merge"

# AWS Batch SubmitJob parameters. The job definitions' command references ``Ref::manifest``;
# ``job_id`` rides along so that Batch's job state change events (whose detail carries the
# job's parameters) name the vsr job.
MANIFEST_PARAMETER = "manifest"
JOB_ID_PARAMETER = "job_id"
# The statusReason the API gives the Batch jobs it stops on a caller's request (TerminateJob):
# events and alarms tell a cancellation from a failure by this prefix.
CANCEL_REASON_PREFIX = "vsr: cancelled by request"


class Resources(BaseModel):
    """What one job (one array child) asks of its host."""

    model_config = ConfigDict(frozen=True)

    vcpus: int = Field(default=1, ge=1)
    memory_mib: int = Field(default=2048, ge=128)
    accelerator: Literal["none", "neuron", "gpu"] = "none"


class StageSpec(BaseModel):
    """One node of the job graph.

    ``array_size`` 0 means a plain job; N >= 2 an array job whose children see
    ``AWS_BATCH_JOB_ARRAY_INDEX`` = 0..N-1 (AWS Batch arrays have at least two children,
    so a one-segment upscale is a plain job and the worker defaults to index 0).
    """

    model_config = ConfigDict(frozen=True)

    name: StageName
    command: list[str]
    array_size: int = Field(default=0, ge=0, le=MAX_ARRAY_SIZE)
    index_flag: str | None = Field(
        default=None,
        description="flag through which one process can be given several array indices (run one "
        "after the other, as their children would run): the local engine's persistent workers",
    )
    depends_on: list[StageName] = Field(default_factory=list)
    resources: Resources = Resources()
    environment: dict[str, str] = Field(default_factory=dict)

    @property
    def children(self) -> int:
        return self.array_size or 1

    def command_for(self, indices: list[int]) -> list[str]:
        """The command of one process that does the work of children ``indices``."""
        if self.index_flag is None:
            raise ValueError(f"stage {self.name} takes one array index per process")
        return [*self.command, self.index_flag, ",".join(str(i) for i in indices)]


DEFAULT_RESOURCES: dict[str, Resources] = {
    "split": Resources(vcpus=1, memory_mib=2048),
    "upscale": Resources(vcpus=2, memory_mib=4096),
    "merge": Resources(vcpus=1, memory_mib=2048),
}


def stage_command(stage: StageName, manifest_uri: str) -> list[str]:
    return [WORKER_COMMAND, stage, "--manifest", manifest_uri]


def build_job_graph(
    manifest_uri: str,
    segments: int,
    resources: dict[str, Resources] | None = None,
    environment: dict[str, str] | None = None,
) -> list[StageSpec]:
    """The three stages of one job, in submission order."""
    if segments < 1:
        raise ValueError("a job has at least one segment")
    res = {**DEFAULT_RESOURCES, **(resources or {})}
    env = dict(environment or {})
    return [
        StageSpec(name="split", command=stage_command("split", manifest_uri), resources=res["split"], environment=env),
        StageSpec(
            name="upscale",
            command=stage_command("upscale", manifest_uri),
            array_size=segments if segments > 1 else 0,
            index_flag=INDEX_FLAG,
            depends_on=["split"],
            resources=res["upscale"],
            environment=env,
        ),
        StageSpec(
            name="merge",
            command=stage_command("merge", manifest_uri),
            depends_on=["upscale"],
            resources=res["merge"],
            environment=env,
        ),
    ]
