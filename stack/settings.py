"""The stack's settings: one typed, validated model read from the stack's Pulumi config.

Sources, highest priority first: environment variables ``VSR_STACK_<FIELD>`` (nested fields
with ``__``, e.g. ``VSR_STACK_COMPUTE__MAX_VCPUS_SPOT=32``), the stack's Pulumi config
(``vsr:<field>``; nested models are structured config, e.g. ``pulumi config set --path
vsr:compute.max_vcpus_spot 32``), then the defaults below.

Config is read once, at the edge (``__main__.py``, via :func:`load_settings`); components
receive the resulting :class:`StackSettings` and never read config themselves. Any invalid
value fails with one :class:`SettingsError` whose message names every offending key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from vsr_client.contract import DEFAULT_MODEL
from vsr_client.devices import device_for_accelerator

PROJECT = "vsr"
ENV_PREFIX = "VSR_STACK_"
REPO_ROOT = Path(__file__).resolve().parents[1]

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
)
S3_MAX_OBJECT_BYTES = 5 * 1024**4
# AWS WAF inspects at most this much of a regional (API Gateway) request body by default.
WAF_BODY_INSPECTION_BYTES = 8 * 1024


class Accelerator(StrEnum):
    INF1 = "inf1"
    INF2 = "inf2"
    GPU = "gpu"
    CPU = "cpu"


# Which runtime/worker/Dockerfile.<flavour> serves each accelerator.
WORKER_IMAGE_FLAVOURS = {
    Accelerator.INF1: "neuron",
    Accelerator.INF2: "neuronx",
    Accelerator.GPU: "gpu",
    Accelerator.CPU: "cpu",
}


class InstanceSpec(BaseModel):
    """What Batch can place on one instance type (the figures AWS publishes)."""

    model_config = ConfigDict(frozen=True)

    vcpus: int
    memory_mib: int
    neuron_devices: int = 0
    gpus: int = 0


INSTANCE_SPECS: dict[str, InstanceSpec] = {
    "inf1.xlarge": InstanceSpec(vcpus=4, memory_mib=8192, neuron_devices=1),
    "inf1.2xlarge": InstanceSpec(vcpus=8, memory_mib=16384, neuron_devices=1),
    "inf1.6xlarge": InstanceSpec(vcpus=24, memory_mib=49152, neuron_devices=4),
    "inf1.24xlarge": InstanceSpec(vcpus=96, memory_mib=196608, neuron_devices=16),
    "inf2.xlarge": InstanceSpec(vcpus=4, memory_mib=16384, neuron_devices=1),
    "inf2.8xlarge": InstanceSpec(vcpus=32, memory_mib=131072, neuron_devices=1),
    "inf2.24xlarge": InstanceSpec(vcpus=96, memory_mib=393216, neuron_devices=6),
    "inf2.48xlarge": InstanceSpec(vcpus=192, memory_mib=786432, neuron_devices=12),
    "g4dn.xlarge": InstanceSpec(vcpus=4, memory_mib=16384, gpus=1),
    "g4dn.2xlarge": InstanceSpec(vcpus=8, memory_mib=32768, gpus=1),
    "g5.xlarge": InstanceSpec(vcpus=4, memory_mib=16384, gpus=1),
    "g5.2xlarge": InstanceSpec(vcpus=8, memory_mib=32768, gpus=1),
    "g6.xlarge": InstanceSpec(vcpus=4, memory_mib=16384, gpus=1),
    "g6.2xlarge": InstanceSpec(vcpus=8, memory_mib=32768, gpus=1),
    "c6i.large": InstanceSpec(vcpus=2, memory_mib=4096),
    "c7i.large": InstanceSpec(vcpus=2, memory_mib=4096),
    "m6i.large": InstanceSpec(vcpus=2, memory_mib=8192),
    "c6i.xlarge": InstanceSpec(vcpus=4, memory_mib=8192),
    "c6i.2xlarge": InstanceSpec(vcpus=8, memory_mib=16384),
    "c7i.xlarge": InstanceSpec(vcpus=4, memory_mib=8192),
    "c7i.2xlarge": InstanceSpec(vcpus=8, memory_mib=16384),
    "m6i.xlarge": InstanceSpec(vcpus=4, memory_mib=16384),
    "m6i.2xlarge": InstanceSpec(vcpus=8, memory_mib=32768),
}
# The ECS agent and the OS keep part of an instance's memory; Batch cannot place more.
SCHEDULABLE_MEMORY_FRACTION = 0.9

_GPU_FAMILIES = ("g4dn", "g5", "g6", "g6e", "p3", "p4d", "p5")
_ACCELERATED_FAMILIES = ("inf", "trn", "dl", "g", "p", "vt", "f1")


class AcceleratorProfile(BaseModel):
    """Per-accelerator defaults: instance types, AMI and the upscale job's share of a host."""

    model_config = ConfigDict(frozen=True)

    instance_types: list[str]
    image_type: Literal["ECS_AL2023", "ECS_AL2023_NVIDIA"]
    ami_ssm_parameter: str | None
    upscale_vcpus: int
    upscale_memory_mib: int


# ECS_AL2023 with the ECS-optimized AL2023 *Neuron* AMI as image_id_override for Inferentia:
# Batch has no Inferentia image type, and AL2 AMIs are blocked for new compute environments
# from 2026-06-30. GPU uses Batch's own NVIDIA image type; CPU the plain ECS AL2023 AMI.
# AWS publishes the AL2023 Neuron AMI under ``neuron`` (``inf`` exists only for Amazon Linux 2);
# since its 2023.0.20260108 release it downgrades the Neuron driver at boot on Inf1 hosts.
NEURON_AMI_SSM_PARAMETER = "/aws/service/ecs/optimized-ami/amazon-linux-2023/neuron/recommended/image_id"
ACCELERATOR_PROFILES: dict[Accelerator, AcceleratorProfile] = {
    Accelerator.INF1: AcceleratorProfile(
        instance_types=["inf1.xlarge"],
        image_type="ECS_AL2023",
        ami_ssm_parameter=NEURON_AMI_SSM_PARAMETER,
        upscale_vcpus=4,
        upscale_memory_mib=7000,
    ),
    Accelerator.INF2: AcceleratorProfile(
        instance_types=["inf2.xlarge"],
        image_type="ECS_AL2023",
        ami_ssm_parameter=NEURON_AMI_SSM_PARAMETER,
        upscale_vcpus=4,
        upscale_memory_mib=14000,
    ),
    Accelerator.GPU: AcceleratorProfile(
        instance_types=["g5.xlarge", "g6.xlarge", "g4dn.xlarge"],
        image_type="ECS_AL2023_NVIDIA",
        ami_ssm_parameter=None,
        upscale_vcpus=4,
        upscale_memory_mib=14000,
    ),
    Accelerator.CPU: AcceleratorProfile(
        instance_types=["c6i.xlarge", "c6i.2xlarge", "c7i.2xlarge"],
        image_type="ECS_AL2023",
        ami_ssm_parameter=None,
        upscale_vcpus=4,
        upscale_memory_mib=7000,
    ),
}


class SettingValueError(ValueError):
    """A cross-field check that knows which key is at fault."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


class SettingsError(Exception):
    """Invalid stack configuration: one message naming every offending ``vsr:`` key."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_retention(value: int) -> int:
    if value not in LOG_RETENTION_DAYS:
        raise ValueError(f"must be one of CloudWatch's retention periods {sorted(LOG_RETENTION_DAYS)}")
    return value


class StageResources(_Model):
    vcpus: int = Field(ge=1, le=192, description="vCPUs of one job of this stage")
    memory_mib: int = Field(ge=512, le=786432, description="memory (MiB) of one job of this stage")
    timeout_seconds: int = Field(ge=60, le=14 * 24 * 3600, description="attempt timeout; Batch kills the job after")


class CpuEnvironmentSettings(_Model):
    """The small CPU compute environments (spot, on-demand) where split and merge run."""

    instance_types: list[str] = Field(
        default=["c6i.large", "c7i.large", "m6i.large", "c6i.xlarge"],
        min_length=1,
        max_length=20,
        description="x86_64 CPU instance types for split and merge (no accelerators)",
    )
    max_vcpus_spot: int = Field(default=16, ge=1, le=10000, description="vCPU ceiling of the CPU spot environment")
    max_vcpus_on_demand: int = Field(default=8, ge=1, le=10000, description="vCPU ceiling of the CPU on-demand one")

    @field_validator("instance_types")
    @classmethod
    def _cpu_types(cls, value: list[str]) -> list[str]:
        value = _check_instance_types(value)
        accelerated = [t for t in value if not _family_check(Accelerator.CPU)(t)]
        if accelerated:
            raise ValueError(f"accelerated instance types waste their accelerator on split/merge: {accelerated}")
        return value


def _check_instance_types(value: list[str]) -> list[str]:
    bad = [t for t in value if not re.fullmatch(r"[a-z][a-z0-9-]*\.[a-z0-9]+|optimal", t)]
    if bad:
        raise ValueError(f"not EC2 instance types: {bad}")
    if len(set(value)) != len(value):
        raise ValueError("instance types are listed twice")
    return value


class ComputeSettings(_Model):
    """AWS Batch: the accelerator's spot and on-demand compute environments, a small CPU pair for
    split and merge, and their queues."""

    instance_types: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=20,
        description="EC2 instance types of the upscale compute environments; default per accelerator",
    )
    min_vcpus: int = Field(default=0, ge=0, description="vCPUs kept running when idle (0 scales to zero)")
    max_vcpus_spot: int = Field(default=64, ge=1, le=10000, description="vCPU ceiling of the spot environment")
    max_vcpus_on_demand: int = Field(default=16, ge=1, le=10000, description="vCPU ceiling of the on-demand one")
    spot_allocation_strategy: Literal["SPOT_PRICE_CAPACITY_OPTIMIZED", "SPOT_CAPACITY_OPTIMIZED"] = Field(
        default="SPOT_PRICE_CAPACITY_OPTIMIZED",
        description="spot placement; BEST_FIT would need a spot fleet role and is not offered",
    )
    on_demand_allocation_strategy: Literal["BEST_FIT_PROGRESSIVE", "BEST_FIT"] = Field(
        default="BEST_FIT_PROGRESSIVE", description="on-demand placement"
    )
    spot_bid_percentage: int | None = Field(
        default=None, ge=1, le=100, description="max spot price as % of on-demand; unset = up to on-demand"
    )
    root_volume_gib: int = Field(
        default=100, ge=30, le=16384, description="encrypted gp3 root volume (Docker images + segments)"
    )
    ami_ssm_parameter: str | None = Field(
        default=None,
        pattern=r"^/[A-Za-z0-9_.\-/]+$",
        description="SSM parameter holding the AMI id; default per accelerator (the Neuron AMI for inf1/inf2)",
    )
    ami_id: str | None = Field(
        default=None,
        pattern=r"^ami-[0-9a-f]{8,17}$",
        description="pin this exact AMI (wins over ami_ssm_parameter)",
    )
    job_attempts: int = Field(default=3, ge=1, le=10, description="attempts per job (spot reclaims are retried)")
    runnable_timeout_seconds: int = Field(
        default=4 * 3600,
        ge=600,
        le=86400,
        description="cancel jobs stuck RUNNABLE this long because no instance type can ever run them",
    )
    runnable_capacity_timeout_seconds: int | None = Field(
        default=2 * 3600,
        ge=600,
        le=86400,
        description=(
            "cancel jobs stuck RUNNABLE this long because every environment of their queue lacks"
            " EC2 capacity (CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY); null waits for capacity"
        ),
    )
    cpu: CpuEnvironmentSettings = Field(
        default_factory=CpuEnvironmentSettings, description="the CPU environments of split and merge"
    )
    split: StageResources = Field(
        default=StageResources(vcpus=1, memory_mib=2048, timeout_seconds=3600), description="one split job"
    )
    upscale: StageResources | None = Field(
        default=None, description="resources of one upscale child; default per accelerator"
    )
    merge: StageResources = Field(
        default=StageResources(vcpus=1, memory_mib=2048, timeout_seconds=3600), description="one merge job"
    )

    @field_validator("instance_types")
    @classmethod
    def _instance_type_shape(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _check_instance_types(value)


class StorageSettings(_Model):
    """The S3 bucket's layout and lifecycle."""

    input_prefix: str = Field(default="inputs/", description="user uploads")
    output_prefix: str = Field(default="outputs/", description="finished videos")
    work_prefix: str = Field(default="jobs/", description="per-job intermediates: jobs/<job_id>/")
    work_expiry_days: int = Field(default=7, ge=1, le=365, description="intermediates are deleted after")
    input_expiry_days: int | None = Field(default=30, ge=1, le=3650, description="uploads deleted after; None keeps")
    output_expiry_days: int | None = Field(default=None, ge=1, le=3650, description="results deleted after")
    abort_multipart_days: int = Field(default=1, ge=1, le=30, description="incomplete multipart uploads aborted")
    force_destroy: bool = Field(default=False, description="let `pulumi destroy` delete a non-empty bucket")

    @field_validator("input_prefix", "output_prefix", "work_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*/", value):
            raise ValueError("must be a relative key prefix ending in '/', e.g. 'inputs/'")
        return value

    @model_validator(mode="after")
    def _distinct(self) -> StorageSettings:
        prefixes = {"input_prefix": self.input_prefix, "output_prefix": self.output_prefix}
        prefixes["work_prefix"] = self.work_prefix
        for a, pa in prefixes.items():
            for b, pb in prefixes.items():
                if a < b and (pa.startswith(pb) or pb.startswith(pa)):
                    raise SettingValueError(f"storage.{b}", f"{pb!r} overlaps storage.{a} {pa!r}")
        return self


class DatabaseSettings(_Model):
    """The DynamoDB job table."""

    point_in_time_recovery: bool = Field(default=True, description="35 days of continuous backups")
    deletion_protection: bool = Field(default=True, description="refuse to delete the table")
    job_ttl_days: int = Field(default=30, ge=1, le=3650, description="job records expire (TTL) after")


class ApiSettings(_Model):
    """API Gateway (REST v1) in front of the Lambda."""

    auth: Literal["apikey", "iam"] = Field(default="apikey", description="API key + usage plan, or SigV4 (IAM)")
    throttle_rate_limit: float = Field(default=10.0, gt=0, le=10000, description="steady requests per second")
    throttle_burst_limit: int = Field(default=20, ge=1, le=5000, description="burst requests")
    quota_limit: int = Field(default=1000, ge=1, description="requests per quota period per API key")
    quota_period: Literal["DAY", "WEEK", "MONTH"] = Field(default="DAY", description="the quota's period")
    max_request_bytes: int = Field(
        default=WAF_BODY_INSPECTION_BYTES,
        ge=256,
        le=WAF_BODY_INSPECTION_BYTES,
        description="larger request bodies are rejected by AWS WAF (videos go straight to S3)",
    )
    manage_account_logging_role: bool = Field(
        default=True,
        description="set the region's API Gateway CloudWatch role (account-wide; needed for access logs)",
    )
    function_archive: Path = Field(
        default=Path("build/lambda/function.zip"),
        validate_default=True,
        description="the handler's code, built by scripts/build_lambda.py (relative to the repository root)",
    )
    layer_archive: Path = Field(
        default=Path("build/lambda/layer-av.zip"),
        validate_default=True,
        description="the PyAV layer, built by scripts/build_lambda.py",
    )
    memory_mb: int = Field(default=1024, ge=128, le=10240, description="Lambda memory (probing uses PyAV)")
    timeout_seconds: int = Field(default=29, ge=3, le=29, description="Lambda timeout; API Gateway waits 29 s")
    reserved_concurrency: int | None = Field(
        default=None,
        ge=1,
        description=(
            "reserved concurrency of the API Lambda; unset reserves none (Lambda keeps 100 of the"
            " account's concurrency unreserved, and new accounts may have a quota of 10)"
        ),
    )

    @field_validator("function_archive", "layer_archive")
    @classmethod
    def _archive_exists(cls, value: Path) -> Path:
        path = value if value.is_absolute() else REPO_ROOT / value
        if path.suffix != ".zip" or not path.is_file():
            raise ValueError(f"{path} is not a built .zip; run `python scripts/build_lambda.py` first")
        return path

    @model_validator(mode="after")
    def _burst(self) -> ApiSettings:
        if self.throttle_burst_limit < self.throttle_rate_limit:
            raise SettingValueError("api.throttle_burst_limit", "must be at least api.throttle_rate_limit")
        return self


class JobLimits(_Model):
    """What the API accepts (passed to the Lambda's environment)."""

    max_input_bytes: int = Field(default=10 * 1024**3, ge=1024**2, le=S3_MAX_OBJECT_BYTES, description="upload cap")
    max_duration_seconds: int = Field(default=4 * 3600, ge=1, le=7 * 24 * 3600, description="longest video")
    segment_time_min: float = Field(default=10.0, gt=0, le=3600, description="shortest segment a job may ask")
    segment_time_max: float = Field(default=300.0, gt=0, le=3600, description="longest segment a job may ask")
    default_model: str = Field(
        default=DEFAULT_MODEL, pattern=r"^[A-Za-z0-9_.\-]+$", description="model when unset ('bicubic': no learning)"
    )

    @model_validator(mode="after")
    def _bounds(self) -> JobLimits:
        if self.segment_time_min > self.segment_time_max:
            raise SettingValueError("limits.segment_time_min", "must not exceed limits.segment_time_max")
        return self


class NetworkSettings(_Model):
    """Where Batch instances run: an existing VPC's subnets, or a small VPC created here."""

    vpc_id: str | None = Field(default=None, pattern=r"^vpc-[0-9a-f]{8,17}$", description="use this VPC")
    subnet_ids: list[str] = Field(default_factory=list, description="existing subnets (with egress to AWS APIs)")
    security_group_ids: list[str] = Field(default_factory=list, description="existing groups; default: egress-only")
    cidr_block: str = Field(
        default="10.64.0.0/16", pattern=r"^\d+\.\d+\.\d+\.\d+/(1[6-9]|2[0-4])$", description="the created VPC's range"
    )
    availability_zones: int = Field(default=2, ge=1, le=6, description="public subnets created, one per zone")

    @field_validator("subnet_ids")
    @classmethod
    def _subnets(cls, value: list[str]) -> list[str]:
        bad = [s for s in value if not re.fullmatch(r"subnet-[0-9a-f]{8,17}", s)]
        if bad:
            raise ValueError(f"not subnet ids: {bad}")
        return value

    @field_validator("security_group_ids")
    @classmethod
    def _groups(cls, value: list[str]) -> list[str]:
        bad = [s for s in value if not re.fullmatch(r"sg-[0-9a-f]{8,17}", s)]
        if bad:
            raise ValueError(f"not security group ids: {bad}")
        return value

    @model_validator(mode="after")
    def _existing(self) -> NetworkSettings:
        if self.vpc_id and not self.subnet_ids:
            raise SettingValueError("network.subnet_ids", "required when network.vpc_id is set")
        if (self.subnet_ids or self.security_group_ids) and not self.vpc_id:
            raise SettingValueError("network.vpc_id", "required when subnets or security groups are given")
        return self


class WorkerImageSettings(_Model):
    """The worker container: built from runtime/worker and pushed to ECR, or a given URI."""

    uri: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9.\-]+(:\d+)?/[a-z0-9._\-/]+(:[\w.\-]+|@sha256:[0-9a-f]{64})$",
        description="use this image instead of building one (registry/repo:tag or @sha256:digest)",
    )
    context: Path = Field(default=Path("."), description="build context, relative to the repository root")
    dockerfile: str = Field(
        default="runtime/worker/Dockerfile.{image}",
        description=(
            "Dockerfile path relative to the repository root; {image} is the worker image flavour of the"
            " accelerator (inf1: neuron, inf2: neuronx, gpu, cpu), {accelerator} the accelerator itself"
        ),
    )
    keep_images: int = Field(default=10, ge=1, le=1000, description="ECR lifecycle: tagged images kept")


class MonitoringSettings(_Model):
    """Logs, alarms and where they are sent."""

    log_retention_days: int = Field(default=30, description="Lambda, API access and Batch job logs")
    alarm_email: str | None = Field(
        default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", description="subscribed to the alarm topic"
    )
    failed_jobs_threshold: int = Field(
        default=1, ge=1, description="failed vsr jobs (not Batch array children) in 5 minutes that alarm"
    )

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        return _check_retention(value)


class StackSettings(BaseSettings):
    """Everything the stack is built from. Field docs are the config reference (docs/deploy.md)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
        validate_default=True,
    )

    accelerator: Accelerator = Field(
        default=Accelerator.CPU, description="the upscale hardware: inf1, inf2, gpu or cpu"
    )
    # Nested defaults are validated like given values (an unbuilt Lambda archive is reported).
    compute: ComputeSettings = Field(default_factory=dict)
    storage: StorageSettings = Field(default_factory=dict)
    database: DatabaseSettings = Field(default_factory=dict)
    api: ApiSettings = Field(default_factory=dict)
    limits: JobLimits = Field(default_factory=dict)
    network: NetworkSettings = Field(default_factory=dict)
    worker_image: WorkerImageSettings = Field(default_factory=dict)
    monitoring: MonitoringSettings = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict, description="extra tags on every taggable resource")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init_settings carries the Pulumi config (see load_settings); env vars override it.
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _consistent(self) -> StackSettings:
        family_ok = _family_check(self.accelerator)
        wrong = [t for t in self.instance_types if not family_ok(t)]
        if wrong:
            raise SettingValueError("compute.instance_types", f"{wrong} do not match accelerator {self.accelerator}")
        if self.compute.min_vcpus > min(self.compute.max_vcpus_spot, self.compute.max_vcpus_on_demand):
            raise SettingValueError("compute.min_vcpus", "must not exceed either max_vcpus")
        up = self.upscale_resources
        specs = [INSTANCE_SPECS[t] for t in self.instance_types if t in INSTANCE_SPECS]
        cpu_types = self.compute.cpu.instance_types
        cpu_specs = [INSTANCE_SPECS[t] for t in cpu_types if t in INSTANCE_SPECS]
        for stage, res, on, types in (
            ("split", self.compute.split, cpu_specs, cpu_types),
            ("upscale", up, specs, self.instance_types),
            ("merge", self.compute.merge, cpu_specs, cpu_types),
        ):
            if on and not any(_fits(res, s) for s in on):
                raise SettingValueError(
                    f"compute.{stage}", f"{res.vcpus} vCPUs / {res.memory_mib} MiB fit none of {types}"
                )
        if self.accelerator in (Accelerator.INF1, Accelerator.INF2):
            devices = {s.neuron_devices for s in specs}
            if len(devices) > 1:
                raise SettingValueError(
                    "compute.instance_types", "Inferentia types must have the same number of Neuron devices"
                )
            for t in self.instance_types:
                # Devices are mapped statically: two upscale jobs on one host would share them.
                if t in INSTANCE_SPECS and _fits_count(up, INSTANCE_SPECS[t]) > 1:
                    raise SettingValueError(
                        "compute.upscale", f"two upscale jobs fit on one {t}; ask for more than half its vCPUs"
                    )
        return self

    @property
    def profile(self) -> AcceleratorProfile:
        return ACCELERATOR_PROFILES[self.accelerator]

    @property
    def instance_types(self) -> list[str]:
        return list(self.compute.instance_types or self.profile.instance_types)

    @property
    def upscale_resources(self) -> StageResources:
        return self.compute.upscale or StageResources(
            vcpus=self.profile.upscale_vcpus, memory_mib=self.profile.upscale_memory_mib, timeout_seconds=6 * 3600
        )

    @property
    def neuron_devices(self) -> int:
        """Neuron devices mapped into the upscale container (all of the host's)."""
        if self.accelerator not in (Accelerator.INF1, Accelerator.INF2):
            return 0
        known = [INSTANCE_SPECS[t].neuron_devices for t in self.instance_types if t in INSTANCE_SPECS]
        return known[0] if known else 1

    @property
    def gpus(self) -> int:
        return 1 if self.accelerator is Accelerator.GPU else 0

    @property
    def upscale_device(self) -> str:
        """The upscale backend on this stack's hosts (one rule: ``vsr_client.devices``)."""
        return device_for_accelerator(self.accelerator.value)

    @property
    def ami_ssm_parameter(self) -> str | None:
        """The SSM parameter to read the AMI from, or None (Batch's default AMI, or a pinned ami_id)."""
        if self.compute.ami_id:
            return None
        return self.compute.ami_ssm_parameter or self.profile.ami_ssm_parameter

    @property
    def dockerfile(self) -> str:
        image = WORKER_IMAGE_FLAVOURS[self.accelerator]
        return self.worker_image.dockerfile.format(accelerator=self.accelerator.value, image=image)


def _family_check(accelerator: Accelerator):
    def family(t: str) -> str:
        return t.split(".", 1)[0]

    if accelerator is Accelerator.INF1:
        return lambda t: family(t) == "inf1"
    if accelerator is Accelerator.INF2:
        return lambda t: family(t) == "inf2"
    if accelerator is Accelerator.GPU:
        return lambda t: family(t) in _GPU_FAMILIES
    return lambda t: t == "optimal" or not family(t).startswith(_ACCELERATED_FAMILIES)


def _fits_count(res: StageResources, spec: InstanceSpec) -> int:
    return min(spec.vcpus // res.vcpus, int(spec.memory_mib * SCHEDULABLE_MEMORY_FRACTION) // res.memory_mib)


def _fits(res: StageResources, spec: InstanceSpec) -> bool:
    return _fits_count(res, spec) >= 1


def _parse_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Pulumi config (``vsr:key`` or ``key`` -> str) into model input; structured values are JSON."""
    fields: dict[str, FieldInfo] = StackSettings.model_fields
    values: dict[str, Any] = {}
    errors: list[str] = []
    for raw_key, raw in config.items():
        namespace, _, key = raw_key.rpartition(":")
        if namespace and namespace != PROJECT:
            continue
        if key not in fields:
            errors.append(f"{PROJECT}:{key}: unknown setting (known: {', '.join(sorted(fields))})")
            continue
        if isinstance(raw, str) and key not in ("accelerator",):
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = raw
            raw = parsed if isinstance(parsed, dict | list) else raw
        values[key] = raw
    if errors:
        raise SettingsError("invalid stack settings:\n  " + "\n  ".join(errors))
    return values


def _describe(error: Mapping[str, Any]) -> str:
    exc = (error.get("ctx") or {}).get("error")
    if isinstance(exc, SettingValueError):
        return f"{PROJECT}:{exc.key}: {exc.message}"
    loc = ".".join(str(p) for p in error["loc"])
    msg = error["msg"].removeprefix("Value error, ")
    got = error.get("input")
    shown = "" if isinstance(got, dict) or got is None else f" (got {got!r})"
    return f"{PROJECT}:{loc}: {msg}{shown}"


def load_settings(config: Mapping[str, Any] | None = None) -> StackSettings:
    """Validate ``config`` (Pulumi config, ``vsr:key`` -> value) plus ``VSR_STACK_*`` env vars."""
    values = _parse_config(config or {})
    try:
        return StackSettings(**values)
    except ValidationError as exc:
        lines = sorted({_describe(e) for e in exc.errors()})
        where = f"set with `pulumi config set --path {PROJECT}:<key> <value>` or {ENV_PREFIX}<KEY> (nested: __)"
        raise SettingsError("invalid stack settings:\n  " + "\n  ".join(lines) + f"\n({where})") from None


def pulumi_config(namespace: str = PROJECT) -> dict[str, Any]:
    """The running stack's config under ``namespace`` (read once, in ``__main__.py``)."""
    from pulumi.runtime import config as runtime_config

    merged = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    return {k: v for k, v in merged.items() if k.startswith(f"{namespace}:")}
