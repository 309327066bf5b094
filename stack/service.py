"""The whole service as one component: storage, image, network, IAM, Batch, table, API, alarms."""

from __future__ import annotations

import pulumi

from stack.api import Api, ApiArgs
from stack.compute import Batch, BatchArgs
from stack.database import JobTable, JobTableArgs
from stack.iam import BatchRoles, BatchRolesArgs
from stack.monitoring import Monitoring, MonitoringArgs
from stack.network import Network, NetworkArgs
from stack.registry import WorkerImage, WorkerImageArgs
from stack.settings import StackSettings
from stack.storage import Storage, StorageArgs
from vsr_client.jobgraph import FINAL_STAGE


class VsrService(pulumi.ComponentResource):
    """Everything one stack deploys; ``outputs`` is what ``__main__`` exports."""

    outputs: dict[str, pulumi.Input]

    def __init__(self, name: str, settings: StackSettings, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vsr:service:Service", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {"app": "vsr", "stack": name, **settings.tags}
        st = settings.storage

        storage = Storage(f"{name}-data", StorageArgs(settings=st, tags=tags), child)
        image = WorkerImage(
            f"{name}-worker", WorkerImageArgs(settings=settings, force_delete=st.force_destroy, tags=tags), child
        )
        network = Network(f"{name}-net", NetworkArgs(settings=settings.network, tags=tags), child)
        roles = BatchRoles(
            f"{name}-batch",
            BatchRolesArgs(
                bucket_arn=storage.bucket_arn,
                work_prefix=st.work_prefix,
                output_prefix=st.output_prefix,
                tags=tags,
            ),
            child,
        )
        batch = Batch(
            name,
            BatchArgs(
                settings=settings,
                subnet_ids=network.subnet_ids,
                security_group_ids=network.security_group_ids,
                instance_profile_arn=roles.instance_profile_arn,
                job_role_arn=roles.job_role_arn,
                image_ref=image.image_ref,
                bucket_name=storage.bucket_name,
                tags=tags,
            ),
            child,
        )
        queue_arns = {
            "spot": batch.spot_queue.arn,
            "on_demand": batch.on_demand_queue.arn,
            "cpu_spot": batch.cpu_spot_queue.arn,
            "cpu_on_demand": batch.cpu_on_demand_queue.arn,
        }
        table = JobTable(f"{name}-jobs", JobTableArgs(settings=settings.database, tags=tags), child)
        api = Api(
            f"{name}-api",
            ApiArgs(
                stack=name,
                settings=settings,
                bucket_name=storage.bucket_name,
                bucket_arn=storage.bucket_arn,
                table_name=table.table_name,
                table_arn=table.table_arn,
                queue_arns=queue_arns,
                job_definition_arns={k: jd.arn for k, jd in batch.job_definitions.items()},
                job_definition_arn_prefixes={k: jd.arn_prefix for k, jd in batch.job_definitions.items()},
                tags=tags,
            ),
            child,
        )
        monitoring = Monitoring(
            f"{name}-monitoring",
            MonitoringArgs(
                settings=settings.monitoring,
                queue_arns=list(queue_arns.values()),
                final_definition_prefix=batch.job_definitions[FINAL_STAGE].arn_prefix,
                function_name=api.function_name,
                rest_api_name=api.rest_api_name,
                tags=tags,
            ),
            child,
        )
        self.outputs = {
            "api_url": api.url,
            "api_key_id": api.api_key_id,
            "api_key_value": api.api_key_value,
            "bucket": storage.bucket_name,
            "queue_spot": batch.spot_queue.arn,
            "queue_on_demand": batch.on_demand_queue.arn,
            "queue_cpu_spot": batch.cpu_spot_queue.arn,
            "queue_cpu_on_demand": batch.cpu_on_demand_queue.arn,
            **{f"job_definition_{k}": jd.arn for k, jd in batch.job_definitions.items()},
            "table": table.table_name,
            "dashboard": monitoring.dashboard_name,
            "alarm_topic": monitoring.alarm_topic_arn,
            "job_events_topic": monitoring.job_events_topic_arn,
            "worker_image": image.image_ref,
            "batch_log_group": batch.log_group_name,
        }
        self.register_outputs(self.outputs)
