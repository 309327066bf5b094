"""AWS Batch: compute environments, their queues, the three job definitions.

Two pairs of managed EC2 environments, each a spot and an on-demand one: the accelerator's
(upscale) and a small CPU pair (split and merge, which need no accelerator and must not hold
an Inferentia or GPU host while they copy streams). Four queues: ``-spot`` tries the spot
environment first and falls back to the on-demand one, ``-on-demand`` uses on-demand only,
and ``-cpu-spot`` / ``-cpu-on-demand`` do the same on the CPU pair. The API sends each stage
to its queue (``vsr_api.settings.ApiSettings.queue``).

Each job definition runs ``vsr-worker <stage> --manifest Ref::manifest``; the Lambda submits
with ``parameters={"manifest": <uri>, "job_id": <id>}``. Jobs retry when their host goes away
(spot reclaim, ``Host EC2*``) or storage fails (exit 75), stop at once on the worker's bad-input
exit codes (64-66, 69): retrying cannot fix the input; internal failures get one more attempt.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws

from stack.settings import StackSettings, StageResources
from vsr_client import retry_matrix
from vsr_client.devices import DEVICE_ENV
from vsr_client.jobgraph import MANIFEST_PARAMETER, THREADS_ENV, WORKER_COMMAND

STAGES = ("split", "upscale", "merge")
ROOT_DEVICE = "/dev/xvda"  # the ECS-optimized AL2023 AMIs (plain, NVIDIA and Neuron)
# Split and merge hosts: the plain ECS-optimized AL2023 AMI, Batch's default for this type.
CPU_IMAGE_TYPE = "ECS_AL2023"
# RUNNABLE reasons AWS Batch can act on (jobStateTimeLimitActions), per the Batch user guide
# ("Automatic remediation with jobStateTimeLimitActions"). The misconfigurations never resolve
# on their own; capacity may, so it has its own, usually shorter, wait.
MISCONFIGURATION_REASONS = (
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
)
CAPACITY_REASON = "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"


def stage_command(stage: str) -> list[str]:
    return [WORKER_COMMAND, stage, "--manifest", f"Ref::{MANIFEST_PARAMETER}"]


def runnable_time_limits(misconfiguration_seconds: int, capacity_seconds: int | None) -> list[dict[str, object]]:
    """CreateJobQueue's ``jobStateTimeLimitActions``: cancel jobs stuck RUNNABLE for a reason
    that will not go away (a misconfiguration), or after a wait for EC2 capacity."""
    limits = [(reason, misconfiguration_seconds) for reason in MISCONFIGURATION_REASONS]
    if capacity_seconds is not None:
        limits.append((CAPACITY_REASON, capacity_seconds))
    return [
        {"action": "CANCEL", "state": "RUNNABLE", "reason": reason, "maxTimeSeconds": seconds}
        for reason, seconds in limits
    ]


def evaluate_on_exit() -> list[dict[str, str]]:
    """Retry lost hosts and storage trouble; never bad input; internal failures once.

    The rules are the contract's retry matrix (vsr_client.retry_matrix), which the local
    scheduler applies too; Batch allows five.
    """
    return retry_matrix.evaluate_on_exit()


def container_properties(
    *,
    stage: str,
    image: str,
    job_role_arn: str,
    log_group: str,
    region: str,
    resources: StageResources,
    neuron_devices: int,
    gpus: int,
    environment: dict[str, str],
) -> dict[str, Any]:
    """RegisterJobDefinition's ``containerProperties`` for one stage (validated against botocore)."""
    requirements = [
        {"type": "VCPU", "value": str(resources.vcpus)},
        {"type": "MEMORY", "value": str(resources.memory_mib)},
    ]
    linux: dict[str, Any] = {"initProcessEnabled": True}
    if stage == "upscale":
        if gpus:
            requirements.append({"type": "GPU", "value": str(gpus)})
        if neuron_devices:
            linux["devices"] = [
                {"hostPath": f"/dev/neuron{i}", "containerPath": f"/dev/neuron{i}", "permissions": ["READ", "WRITE"]}
                for i in range(neuron_devices)
            ]
        # PyTorch's intra-op workers share tensors through /dev/shm.
        linux["sharedMemorySize"] = min(2048, resources.memory_mib // 4)
    return {
        "image": image,
        "command": stage_command(stage),
        "jobRoleArn": job_role_arn,
        "resourceRequirements": requirements,
        "environment": [{"name": k, "value": v} for k, v in sorted(environment.items())],
        "linuxParameters": linux,
        "privileged": False,
        "readonlyRootFilesystem": False,
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {"awslogs-group": log_group, "awslogs-region": region, "awslogs-stream-prefix": stage},
        },
    }


def stage_resources(settings: StackSettings) -> dict[str, StageResources]:
    return {"split": settings.compute.split, "upscale": settings.upscale_resources, "merge": settings.compute.merge}


def stage_environment(settings: StackSettings, stage: str, *, region: str, bucket: str) -> dict[str, str]:
    """What the worker reads from its environment in this stage's container."""
    return {
        "AWS_DEFAULT_REGION": region,
        "VSR_BUCKET": bucket,
        DEVICE_ENV: settings.upscale_device,
        # Batch's VCPU reservation is a CPU share, not a limit: the container still sees every
        # core of its host, and two upscale jobs on one host would each start a thread per core.
        THREADS_ENV: str(stage_resources(settings)[stage].vcpus),
    }


def retry_strategy(settings: StackSettings) -> dict[str, Any]:
    return {"attempts": settings.compute.job_attempts, "evaluateOnExit": evaluate_on_exit()}


def job_definition_request(
    settings: StackSettings, stage: str, *, image: str, job_role_arn: str, log_group: str, region: str, bucket: str
) -> dict[str, Any]:
    """RegisterJobDefinition's request for one stage, less its name and tags: what Batch runs.

    The stack registers exactly this (``Batch`` below); the tests register it in moto and run
    it with their Batch emulator, so command, environment and resources under test are these.
    """
    resources = stage_resources(settings)[stage]
    return {
        "type": "container",
        "platformCapabilities": ["EC2"],
        # Placeholder: every submit passes parameters={"manifest": <uri>}; a job submitted
        # without one fails fast on the bad-input exit codes.
        "parameters": {MANIFEST_PARAMETER: "unset"},
        "containerProperties": container_properties(
            stage=stage,
            image=image,
            job_role_arn=job_role_arn,
            log_group=log_group,
            region=region,
            resources=resources,
            neuron_devices=settings.neuron_devices,
            gpus=settings.gpus,
            environment=stage_environment(settings, stage, region=region, bucket=bucket),
        ),
        "retryStrategy": retry_strategy(settings),
        "timeout": {"attemptDurationSeconds": resources.timeout_seconds},
        "propagateTags": True,
    }


class BatchArgs:
    def __init__(
        self,
        *,
        settings: StackSettings,
        subnet_ids: pulumi.Input[list[str]],
        security_group_ids: pulumi.Input[list[str]],
        instance_profile_arn: pulumi.Input[str],
        job_role_arn: pulumi.Input[str],
        image_ref: pulumi.Input[str],
        bucket_name: pulumi.Input[str],
        tags: dict[str, str],
    ) -> None:
        self.settings = settings
        self.subnet_ids = subnet_ids
        self.security_group_ids = security_group_ids
        self.instance_profile_arn = instance_profile_arn
        self.job_role_arn = job_role_arn
        self.image_ref = image_ref
        self.bucket_name = bucket_name
        self.tags = tags


class Batch(pulumi.ComponentResource):
    spot_queue: aws.batch.JobQueue
    on_demand_queue: aws.batch.JobQueue
    cpu_spot_queue: aws.batch.JobQueue
    cpu_on_demand_queue: aws.batch.JobQueue
    job_definitions: dict[str, aws.batch.JobDefinition]
    log_group_name: pulumi.Output[str]

    def __init__(self, name: str, args: BatchArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vsr:compute:Batch", name, None, opts)
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        region = aws.get_region_output().region

        log_group = aws.cloudwatch.LogGroup(
            f"{name}-jobs",
            aws.cloudwatch.LogGroupArgs(
                name=f"/aws/batch/{name}", retention_in_days=s.monitoring.log_retention_days, tags=args.tags
            ),
            opts=child,
        )
        launch_template = aws.ec2.LaunchTemplate(
            name,
            aws.ec2.LaunchTemplateArgs(
                description="vsr Batch instances: encrypted gp3 root, IMDSv2 only",
                block_device_mappings=[
                    aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                        device_name=ROOT_DEVICE,
                        ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                            volume_size=s.compute.root_volume_gib,
                            volume_type="gp3",
                            encrypted="true",
                            delete_on_termination="true",
                        ),
                    )
                ],
                # Hop limit 1: containers cannot reach the instance role through IMDS; jobs get
                # credentials from their job role instead.
                metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                    http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1
                ),
                tag_specifications=[
                    aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags=args.tags)
                    for kind in ("instance", "volume")
                ],
                tags=args.tags,
            ),
            opts=child,
        )
        ami_id: pulumi.Input[str] | None = s.compute.ami_id
        if s.ami_ssm_parameter:
            ami_id = aws.ssm.get_parameter_output(name=s.ami_ssm_parameter, with_decryption=False).insecure_value

        def environment(
            kind: str,
            *,
            spot: bool,
            instance_types: list[str],
            min_vcpus: int,
            max_vcpus: int,
            image_type: str,
            image_id: pulumi.Input[str] | None,
        ) -> aws.batch.ComputeEnvironment:
            c = s.compute
            return aws.batch.ComputeEnvironment(
                f"{name}-{kind}",
                aws.batch.ComputeEnvironmentArgs(
                    # A prefix, not a fixed name: a replaced environment is created before the
                    # old one is deleted (its queue moves over), which needs a fresh name.
                    name_prefix=f"{name}-{kind}-",
                    type="MANAGED",
                    state="ENABLED",
                    compute_resources=aws.batch.ComputeEnvironmentComputeResourcesArgs(
                        type="SPOT" if spot else "EC2",
                        allocation_strategy=c.spot_allocation_strategy if spot else c.on_demand_allocation_strategy,
                        bid_percentage=c.spot_bid_percentage if spot else None,
                        instance_types=instance_types,
                        min_vcpus=min_vcpus,
                        max_vcpus=max_vcpus,
                        subnets=args.subnet_ids,
                        security_group_ids=args.security_group_ids,
                        instance_role=args.instance_profile_arn,
                        launch_template=aws.batch.ComputeEnvironmentComputeResourcesLaunchTemplateArgs(
                            launch_template_id=launch_template.id,
                            version=launch_template.latest_version.apply(str),
                        ),
                        ec2_configurations=[
                            aws.batch.ComputeEnvironmentComputeResourcesEc2ConfigurationArgs(
                                image_type=image_type, image_id_override=image_id
                            )
                        ],
                        tags=args.tags,
                    ),
                    tags=args.tags,
                ),
                opts=child,
            )

        accel = {
            "instance_types": s.instance_types,
            "min_vcpus": s.compute.min_vcpus,
            "image_type": s.profile.image_type,
            "image_id": ami_id,
        }
        # The CPU pair scales to zero and runs Batch's default ECS AL2023 AMI.
        cpu = {
            "instance_types": s.compute.cpu.instance_types,
            "min_vcpus": 0,
            "image_type": CPU_IMAGE_TYPE,
            "image_id": None,
        }
        spot = environment("spot", spot=True, max_vcpus=s.compute.max_vcpus_spot, **accel)
        on_demand = environment("on-demand", spot=False, max_vcpus=s.compute.max_vcpus_on_demand, **accel)
        cpu_spot = environment("cpu-spot", spot=True, max_vcpus=s.compute.cpu.max_vcpus_spot, **cpu)
        cpu_on_demand = environment("cpu-on-demand", spot=False, max_vcpus=s.compute.cpu.max_vcpus_on_demand, **cpu)
        time_limits = runnable_time_limits(
            s.compute.runnable_timeout_seconds, s.compute.runnable_capacity_timeout_seconds
        )

        def queue(kind: str, envs: list[aws.batch.ComputeEnvironment], priority: int) -> aws.batch.JobQueue:
            return aws.batch.JobQueue(
                f"{name}-{kind}",
                aws.batch.JobQueueArgs(
                    name=f"{name}-{kind}",
                    state="ENABLED",
                    # On a shared environment, deadline (on-demand) jobs go first.
                    priority=priority,
                    # Environments are tried in ascending order: spot first, then on-demand.
                    compute_environment_orders=[
                        aws.batch.JobQueueComputeEnvironmentOrderArgs(order=i, compute_environment=env.arn)
                        for i, env in enumerate(envs, 1)
                    ],
                    job_state_time_limit_actions=[
                        aws.batch.JobQueueJobStateTimeLimitActionArgs(
                            action=t["action"],
                            state=t["state"],
                            reason=t["reason"],
                            max_time_seconds=t["maxTimeSeconds"],
                        )
                        for t in time_limits
                    ],
                    tags=args.tags,
                ),
                opts=child,
            )

        self.spot_queue = queue("spot", [spot, on_demand], 10)
        self.on_demand_queue = queue("on-demand", [on_demand], 20)
        self.cpu_spot_queue = queue("cpu-spot", [cpu_spot, cpu_on_demand], 10)
        self.cpu_on_demand_queue = queue("cpu-on-demand", [cpu_on_demand], 20)

        self.job_definitions = {}
        for stage in STAGES:
            request = pulumi.Output.all(
                args.image_ref, args.job_role_arn, log_group.name, region, args.bucket_name
            ).apply(
                lambda v, stage=stage: job_definition_request(
                    s, stage, image=v[0], job_role_arn=v[1], log_group=v[2], region=v[3], bucket=v[4]
                )
            )
            # The parts that need no resolved values, taken from the same request shape.
            static = job_definition_request(s, stage, image="", job_role_arn="", log_group="", region="", bucket="")
            retry = static["retryStrategy"]
            self.job_definitions[stage] = aws.batch.JobDefinition(
                f"{name}-{stage}",
                aws.batch.JobDefinitionArgs(
                    name=f"{name}-{stage}",
                    type=static["type"],
                    platform_capabilities=static["platformCapabilities"],
                    container_properties=request.apply(lambda r: json.dumps(r["containerProperties"], sort_keys=True)),
                    parameters=static["parameters"],
                    retry_strategy=aws.batch.JobDefinitionRetryStrategyArgs(
                        attempts=retry["attempts"],
                        evaluate_on_exits=[
                            aws.batch.JobDefinitionRetryStrategyEvaluateOnExitArgs(
                                action=rule["action"],
                                on_exit_code=rule.get("onExitCode"),
                                on_reason=rule.get("onReason"),
                                on_status_reason=rule.get("onStatusReason"),
                            )
                            for rule in retry["evaluateOnExit"]
                        ],
                    ),
                    timeout=aws.batch.JobDefinitionTimeoutArgs(
                        attempt_duration_seconds=static["timeout"]["attemptDurationSeconds"]
                    ),
                    propagate_tags=static["propagateTags"],
                    tags=args.tags,
                ),
                opts=child,
            )
        self.log_group_name = log_group.name
        self.register_outputs(
            {
                "spot_queue": self.spot_queue.arn,
                "on_demand_queue": self.on_demand_queue.arn,
                "cpu_spot_queue": self.cpu_spot_queue.arn,
                "cpu_on_demand_queue": self.cpu_on_demand_queue.arn,
                **{f"job_definition_{k}": v.arn for k, v in self.job_definitions.items()},
            }
        )
