"""Every environment variable the API reads, in one place (the Pulumi stack sets them)."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from vsr_client.contract import DEFAULT_DEVICE, DEFAULT_MODEL
from vsr_client.devices import DEVICES
from vsr_client.jobgraph import CPU_STAGES


class ApiSettings(BaseSettings):
    """``VSR_*`` environment variables; see docs/api.md."""

    model_config = SettingsConfigDict(env_prefix="VSR_", extra="ignore")

    bucket: str = Field(default="", description="bucket holding inputs, outputs and job files")
    table: str = Field(default="", description="DynamoDB job table (hash key 'job_id', TTL attribute 'expires_at')")
    queue_spot: str = Field(default="", description="Batch job queue for env=spot (name or ARN)")
    queue_on_demand: str = Field(default="", description="Batch job queue for env=onDemand (name or ARN)")
    queue_cpu_spot: str = Field(default="", description="Batch job queue of split and merge for env=spot")
    queue_cpu_on_demand: str = Field(default="", description="Batch job queue of split and merge for env=onDemand")
    job_definition_split: str = Field(default="", description="Batch job definition of the split stage")
    job_definition_upscale: str = Field(default="", description="Batch job definition of the upscale stage")
    job_definition_merge: str = Field(default="", description="Batch job definition of the merge stage")
    input_prefix: str = Field(default="inputs/", description="where uploads go when the caller names no key")
    output_prefix: str = Field(default="outputs/", description="results are written under this prefix")
    work_prefix: str = Field(default="jobs/", description="per-job manifest and intermediates go under this prefix")
    max_input_bytes: int = Field(default=20 * 1024**3, gt=0, description="largest accepted source object")
    max_duration_seconds: float = Field(default=4 * 3600, gt=0, description="longest accepted source video")
    segment_time_min: float = Field(default=1.0, gt=0, description="smallest accepted segment_time")
    segment_time_max: float = Field(default=600.0, gt=0, description="largest accepted segment_time")
    default_model: str = Field(default=DEFAULT_MODEL, description="model used when a request names none")
    device: str = Field(
        default=DEFAULT_DEVICE,
        description="upscale backend written into every manifest; the stack sets it from its accelerator",
    )
    job_ttl_days: int = Field(default=30, ge=1, description="job records expire this many days after creation")
    stack: str = Field(
        default="",
        description="the deployment's name, tagged on every Batch job (vsr:stack); the Lambda may stop only those",
    )

    @model_validator(mode="after")
    def _check(self) -> ApiSettings:
        if self.device not in DEVICES:
            raise ValueError(f"VSR_DEVICE must be one of {', '.join(DEVICES)}, not {self.device!r}")
        if self.segment_time_min > self.segment_time_max:
            raise ValueError("VSR_SEGMENT_TIME_MIN must not exceed VSR_SEGMENT_TIME_MAX")
        for name in ("input_prefix", "output_prefix", "work_prefix"):
            value = getattr(self, name)
            if value and not value.endswith("/"):
                setattr(self, name, value + "/")
        return self

    def check_cloud(self) -> ApiSettings:
        """Fail with one readable message naming every variable the cloud adapters need but lack."""
        needed = (
            "bucket",
            "table",
            "queue_spot",
            "queue_on_demand",
            "queue_cpu_spot",
            "queue_cpu_on_demand",
            "job_definition_split",
            "job_definition_upscale",
            "job_definition_merge",
            "stack",
        )
        missing = [f"VSR_{name.upper()}" for name in needed if not getattr(self, name)]
        if missing:
            raise ValueError(f"the API is not configured: set {', '.join(missing)}")
        return self

    @property
    def reserved_prefixes(self) -> tuple[str, ...]:
        """The service's own prefixes: no request may read from or write into them directly."""
        return tuple(p for p in (self.work_prefix, self.output_prefix) if p)

    def stage_definitions(self) -> dict[str, str]:
        return {
            "split": self.job_definition_split,
            "upscale": self.job_definition_upscale,
            "merge": self.job_definition_merge,
        }

    def queue(self, env: str, stage: str = "upscale") -> str:
        """The queue a stage runs on: split and merge on the CPU queues, upscale on the
        accelerator's; ``env`` picks spot (falling back to on-demand) or on-demand only."""
        on_demand = env == "onDemand"
        if stage in CPU_STAGES:
            return self.queue_cpu_on_demand if on_demand else self.queue_cpu_spot
        return self.queue_on_demand if on_demand else self.queue_spot
