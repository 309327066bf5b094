"""Lambda entry point: ``vsr_api.handler.handler`` (API Gateway REST API, proxy integration).

AWS clients and the service are built once per container, on the first event. The local
server and the tests build the same handler around their own service with ``make_handler``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

from vsr_api.app import build_app
from vsr_api.service import JobService
from vsr_api.settings import ApiSettings

logger = Logger(service="vsr-api")
copy_config_to_registered_loggers(source_logger=logger, include={"vsr_api"})

Handler = Callable[[dict, Any], dict]


def s3_client_config() -> Any:
    """The Lambda's S3 client: presigned URLs signed with SigV4 on the bucket's regional
    virtual-hosted endpoint. botocore's defaults sign them with SigV2 in us-east-1 and
    eu-west-1, which buckets created after June 2020 reject, and on the global endpoint,
    which redirects for a new bucket's first day (the redirect breaks the signature)."""
    from botocore.config import Config

    return Config(signature_version="s3v4", s3={"addressing_style": "virtual"})


def build_cloud_service(settings: ApiSettings | None = None, session: Any = None) -> JobService:
    import boto3

    from vsr_api.adapters.av_prober import AvProber
    from vsr_api.adapters.batch_scheduler import BatchScheduler
    from vsr_api.adapters.dynamo_store import DynamoJobStore
    from vsr_api.adapters.s3_storage import S3Storage

    settings = (settings or ApiSettings()).check_cloud()
    session = session or boto3.session.Session()
    return JobService(
        settings,
        storage=S3Storage(session.client("s3", config=s3_client_config()), settings.bucket),
        prober=AvProber(),
        store=DynamoJobStore(session.client("dynamodb"), settings.table, settings.job_ttl_days),
        scheduler=BatchScheduler(session.client("batch"), settings),
    )


def make_handler(service_factory: Callable[[], JobService]) -> Handler:
    """A Lambda handler over the service ``service_factory`` builds (once, on first use)."""
    app = None

    @logger.inject_lambda_context(clear_state=True)
    def handle(event: dict, context: Any) -> dict:
        nonlocal app
        if app is None:
            app = build_app(service_factory())
        return app.resolve(event, context)

    return handle


handler = make_handler(build_cloud_service)
