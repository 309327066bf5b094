"""AWS Batch: spot and on-demand compute environments, their queues, the three job definitions.

Each job definition runs ``vsr-worker <stage> --manifest Ref::manifest``; the Lambda submits
with ``parameters={"manifest": <uri>}``. Jobs retry when their host goes away (spot reclaim,
``Host EC2*``) or storage fails (exit 75), stop at once on the worker's bad-input exit codes
(64-66, 69): retrying cannot fix the input; internal failures get one more attempt.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws

from stack.settings import StackSettings, StageResources
from vsr_client import retry_matrix
from vsr_client.devices import DEVICE_ENV
from vsr_client.jobgraph import WORKER_COMMAND

STAGES = ("split", "upscale", "merge")
MANIFEST_PARAMETER = "manifest"
ROOT_DEVICE = "/dev/xvda"  # the ECS-optimized AL2023 AMIs (plain, NVIDIA and Neuron)


def stage_command(stage: str) -> list[str]:
    return [WORKER_COMMAND, stage, "--manifest", f"Ref::{MANIFEST_PARAMETER}"]


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

        def environment(kind: str, max_vcpus: int, strategy: str) -> aws.batch.ComputeEnvironment:
            return aws.batch.ComputeEnvironment(
                f"{name}-{kind}",
                aws.batch.ComputeEnvironmentArgs(
                    # A prefix, not a fixed name: a replaced environment is created before the
                    # old one is deleted (its queue moves over), which needs a fresh name.
                    name_prefix=f"{name}-{kind}-",
                    type="MANAGED",
                    state="ENABLED",
                    compute_resources=aws.batch.ComputeEnvironmentComputeResourcesArgs(
                        type="SPOT" if kind == "spot" else "EC2",
                        allocation_strategy=strategy,
                        bid_percentage=s.compute.spot_bid_percentage if kind == "spot" else None,
                        instance_types=s.instance_types,
                        min_vcpus=s.compute.min_vcpus,
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
                                image_type=s.profile.image_type, image_id_override=ami_id
                            )
                        ],
                        tags=args.tags,
                    ),
                    tags=args.tags,
                ),
                opts=child,
            )

        spot = environment("spot", s.compute.max_vcpus_spot, s.compute.spot_allocation_strategy)
        on_demand = environment("on-demand", s.compute.max_vcpus_on_demand, s.compute.on_demand_allocation_strategy)

        def queue(kind: str, env: aws.batch.ComputeEnvironment, priority: int) -> aws.batch.JobQueue:
            return aws.batch.JobQueue(
                f"{name}-{kind}",
                aws.batch.JobQueueArgs(
                    name=f"{name}-{kind}",
                    state="ENABLED",
                    priority=priority,
                    compute_environment_orders=[
                        aws.batch.JobQueueComputeEnvironmentOrderArgs(order=1, compute_environment=env.arn)
                    ],
                    # A job no instance type can ever run would wait forever: cancel it.
                    job_state_time_limit_actions=[
                        aws.batch.JobQueueJobStateTimeLimitActionArgs(
                            action="CANCEL",
                            state="RUNNABLE",
                            reason=reason,
                            max_time_seconds=s.compute.runnable_timeout_seconds,
                        )
                        for reason in (
                            "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
                            "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
                        )
                    ],
                    tags=args.tags,
                ),
                opts=child,
            )

        self.spot_queue = queue("spot", spot, 10)
        self.on_demand_queue = queue("on-demand", on_demand, 20)

        resources = {"split": s.compute.split, "upscale": s.upscale_resources, "merge": s.compute.merge}
        self.job_definitions = {}
        for stage in STAGES:
            res = resources[stage]
            props = pulumi.Output.all(
                args.image_ref, args.job_role_arn, log_group.name, region, args.bucket_name
            ).apply(
                lambda v, stage=stage, res=res: json.dumps(
                    container_properties(
                        stage=stage,
                        image=v[0],
                        job_role_arn=v[1],
                        log_group=v[2],
                        region=v[3],
                        resources=res,
                        neuron_devices=s.neuron_devices,
                        gpus=s.gpus,
                        environment={
                            "AWS_DEFAULT_REGION": v[3],
                            "VSR_BUCKET": v[4],
                            DEVICE_ENV: s.upscale_device,
                        },
                    ),
                    sort_keys=True,
                )
            )
            self.job_definitions[stage] = aws.batch.JobDefinition(
                f"{name}-{stage}",
                aws.batch.JobDefinitionArgs(
                    name=f"{name}-{stage}",
                    type="container",
                    platform_capabilities=["EC2"],
                    container_properties=props,
                    # Placeholder: every submit passes parameters={"manifest": <uri>}; a job
                    # submitted without one fails fast on the bad-input exit codes.
                    parameters={MANIFEST_PARAMETER: "unset"},
                    retry_strategy=aws.batch.JobDefinitionRetryStrategyArgs(
                        attempts=s.compute.job_attempts,
                        evaluate_on_exits=[
                            aws.batch.JobDefinitionRetryStrategyEvaluateOnExitArgs(
                                action=rule["action"],
                                on_exit_code=rule.get("onExitCode"),
                                on_reason=rule.get("onReason"),
                                on_status_reason=rule.get("onStatusReason"),
                            )
                            for rule in evaluate_on_exit()
                        ],
                    ),
                    timeout=aws.batch.JobDefinitionTimeoutArgs(attempt_duration_seconds=res.timeout_seconds),
                    propagate_tags=True,
                    tags=args.tags,
                ),
                opts=child,
            )
        self.log_group_name = log_group.name
        self.register_outputs(
            {
                "spot_queue": self.spot_queue.arn,
                "on_demand_queue": self.on_demand_queue.arn,
                **{f"job_definition_{k}": v.arn for k, v in self.job_definitions.items()},
            }
        )
