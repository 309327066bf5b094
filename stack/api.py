"""The API: a Python 3.12 Lambda (vsr_api.handler.handler) behind an API Gateway REST API.

python3.12 runs on Amazon Linux 2023 (glibc 2.34), so the PyAV layer is the workers' PyAV
(``manylinux_2_28`` wheels); python3.11 runs on Amazon Linux 2 (glibc 2.26), where PyAV 14 was
the newest that loads.

Every method is a Lambda proxy integration and requires an API key (usage plan with
throttling and quota) or, with ``api.auth = iam``, SigV4. The ``prod`` stage keeps the URL
shape ``https://<id>.execute-api.<region>.amazonaws.com/prod/``; it writes JSON access logs,
is throttled per method, and sits behind an AWS WAF ACL that rejects oversized bodies.
"""

from __future__ import annotations

import hashlib
import json

import pulumi
import pulumi_aws as aws

from stack.iam import assume_role_policy, lambda_policy
from stack.settings import StackSettings
from vsr_client.openapi import ROUTES as API_ROUTES

HANDLER = "vsr_api.handler.handler"
# scripts/build_lambda.py resolves the archives' wheels for this interpreter (LAMBDA_PYTHON).
RUNTIME = "python3.12"
STAGE_NAME = "prod"
# (path, method) of every route: the contract's route list (the one the OpenAPI document and
# the handler's route test use), with API Gateway's path parameter name.
ROUTES: tuple[tuple[str, str], ...] = tuple(
    (route.path.replace("{job_id}", "{id}"), route.method.upper()) for route in API_ROUTES
)
# Every path also gets ANY, forwarded like the rest: undeclared, API Gateway would answer a
# wrong method with its own 403 "Missing Authentication Token"; the handler answers JSON 405
# with Allow, as the local server does. Declared methods take precedence over ANY.
FALLBACK_METHOD = "ANY"
APIGW_LOGS_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "ip": "$context.identity.sourceIp",
        "apiKeyId": "$context.identity.apiKeyId",
        "caller": "$context.identity.caller",
        "requestTime": "$context.requestTimeEpoch",
        "method": "$context.httpMethod",
        "path": "$context.resourcePath",
        "status": "$context.status",
        "responseLength": "$context.responseLength",
        "integrationLatency": "$context.integrationLatency",
        "wafStatus": "$context.waf.status",
    },
    sort_keys=True,
)


def lambda_environment(
    *,
    stack: str,
    settings: StackSettings,
    bucket: str,
    table: str,
    queues: dict[str, str],
    job_definitions: dict[str, str],
) -> dict[str, str]:
    """The Lambda's environment: the names the API package reads (fixed by the team)."""
    st, lim = settings.storage, settings.limits
    return {
        "VSR_BUCKET": bucket,
        "VSR_TABLE": table,
        "VSR_QUEUE_SPOT": queues["spot"],
        "VSR_QUEUE_ON_DEMAND": queues["on_demand"],
        "VSR_QUEUE_CPU_SPOT": queues["cpu_spot"],
        "VSR_QUEUE_CPU_ON_DEMAND": queues["cpu_on_demand"],
        "VSR_JOB_DEFINITION_SPLIT": job_definitions["split"],
        "VSR_JOB_DEFINITION_UPSCALE": job_definitions["upscale"],
        "VSR_JOB_DEFINITION_MERGE": job_definitions["merge"],
        "VSR_INPUT_PREFIX": st.input_prefix,
        "VSR_OUTPUT_PREFIX": st.output_prefix,
        "VSR_WORK_PREFIX": st.work_prefix,
        "VSR_MAX_INPUT_BYTES": str(lim.max_input_bytes),
        "VSR_MAX_DURATION_SECONDS": str(lim.max_duration_seconds),
        "VSR_SEGMENT_TIME_MIN": repr(lim.segment_time_min),
        "VSR_SEGMENT_TIME_MAX": repr(lim.segment_time_max),
        "VSR_DEFAULT_MODEL": lim.default_model,
        # The same device the upscale job definition sets: recorded in every manifest.
        "VSR_DEVICE": settings.upscale_device,
        "VSR_JOB_TTL_DAYS": str(settings.database.job_ttl_days),
        # Tagged on every Batch job; the Lambda's policy lets it terminate only jobs with it.
        "VSR_STACK": stack,
    }


class ApiArgs:
    def __init__(
        self,
        *,
        stack: str,
        settings: StackSettings,
        bucket_name: pulumi.Input[str],
        bucket_arn: pulumi.Input[str],
        table_name: pulumi.Input[str],
        table_arn: pulumi.Input[str],
        queue_arns: dict[str, pulumi.Input[str]],
        job_definition_arns: dict[str, pulumi.Input[str]],
        job_definition_arn_prefixes: dict[str, pulumi.Input[str]],
        tags: dict[str, str],
    ) -> None:
        self.stack = stack
        self.settings = settings
        self.bucket_name = bucket_name
        self.bucket_arn = bucket_arn
        self.table_name = table_name
        self.table_arn = table_arn
        # spot, on_demand (upscale), cpu_spot, cpu_on_demand (split and merge)
        self.queue_arns = queue_arns
        self.job_definition_arns = job_definition_arns
        self.job_definition_arn_prefixes = job_definition_arn_prefixes
        self.tags = tags


class Api(pulumi.ComponentResource):
    url: pulumi.Output[str]
    api_key_id: pulumi.Output[str] | None
    api_key_value: pulumi.Output[str] | None
    function_name: pulumi.Output[str]
    rest_api_name: pulumi.Output[str]

    def __init__(self, name: str, args: ApiArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vsr:api:Api", name, None, opts)
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        retention = s.monitoring.log_retention_days

        # --- the Lambda -------------------------------------------------------------------
        function_logs = aws.cloudwatch.LogGroup(
            f"{name}-function",
            aws.cloudwatch.LogGroupArgs(name=f"/aws/lambda/{name}", retention_in_days=retention, tags=args.tags),
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-function",
            aws.iam.RoleArgs(
                assume_role_policy=assume_role_policy("lambda.amazonaws.com"),
                description="vsr API Lambda: this stack's queues, job definitions, bucket prefixes, table",
                tags=args.tags,
            ),
            opts=child,
        )
        caller = aws.get_caller_identity_output()
        partition = aws.get_partition_output()
        region = aws.get_region_output()
        queues = pulumi.Output.all(**args.queue_arns)
        policy = aws.iam.RolePolicy(
            f"{name}-function",
            aws.iam.RolePolicyArgs(
                role=role.id,
                policy=pulumi.Output.all(
                    bucket=args.bucket_arn,
                    table=args.table_arn,
                    queues=queues,
                    logs=function_logs.arn,
                    partition=partition.partition,
                    region=region.region,
                    account=caller.account_id,
                    definitions=pulumi.Output.all(**args.job_definition_arn_prefixes),
                ).apply(
                    lambda v: json.dumps(
                        lambda_policy(
                            stack=args.stack,
                            bucket_arn=v["bucket"],
                            output_prefix=s.storage.output_prefix,
                            table_arn=v["table"],
                            queue_arns=[v["queues"][k] for k in sorted(v["queues"])],
                            log_group_arn=v["logs"],
                            job_arn_pattern=f"arn:{v['partition']}:batch:{v['region']}:{v['account']}:job/*",
                            job_definition_arn_prefixes=[v["definitions"][k] for k in sorted(v["definitions"])],
                        )
                    )
                ),
            ),
            opts=child,
        )
        layer = aws.lambda_.LayerVersion(
            f"{name}-av",
            aws.lambda_.LayerVersionArgs(
                layer_name=f"{name}-av",
                description="PyAV (FFmpeg) for probing uploads",
                code=pulumi.FileArchive(str(s.api.layer_archive)),
                compatible_runtimes=[RUNTIME],
                compatible_architectures=["x86_64"],
            ),
            opts=child,
        )
        environment = pulumi.Output.all(
            bucket=args.bucket_name,
            table=args.table_name,
            queues=queues,
            definitions=pulumi.Output.all(**args.job_definition_arns),
        ).apply(
            lambda v: lambda_environment(
                stack=args.stack,
                settings=s,
                bucket=v["bucket"],
                table=v["table"],
                queues=v["queues"],
                job_definitions=v["definitions"],
            )
        )
        function = aws.lambda_.Function(
            name,
            aws.lambda_.FunctionArgs(
                runtime=RUNTIME,
                handler=HANDLER,
                architectures=["x86_64"],
                code=pulumi.FileArchive(str(s.api.function_archive)),
                layers=[layer.arn],
                role=role.arn,
                memory_size=s.api.memory_mb,
                timeout=s.api.timeout_seconds,
                reserved_concurrent_executions=s.api.reserved_concurrency,
                environment=aws.lambda_.FunctionEnvironmentArgs(variables=environment),
                logging_config=aws.lambda_.FunctionLoggingConfigArgs(log_format="JSON", log_group=function_logs.name),
                tags=args.tags,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )

        # --- the REST API -----------------------------------------------------------------
        rest_api = aws.apigateway.RestApi(
            name,
            aws.apigateway.RestApiArgs(
                description="vsr: video super-resolution jobs",
                endpoint_configuration=aws.apigateway.RestApiEndpointConfigurationArgs(types="REGIONAL"),
                api_key_source="HEADER",
                tags=args.tags,
            ),
            opts=child,
        )
        validator = aws.apigateway.RequestValidator(
            f"{name}-params",
            aws.apigateway.RequestValidatorArgs(
                rest_api=rest_api.id, name="parameters", validate_request_parameters=True, validate_request_body=False
            ),
            opts=child,
        )
        resources: dict[str, pulumi.Input[str]] = {"/": rest_api.root_resource_id}
        for path in sorted({p for p, _ in ROUTES if p != "/"}, key=lambda p: p.count("/")):
            parent_path, _, part = path.rpartition("/")
            resources[path] = aws.apigateway.Resource(
                f"{name}{path.replace('/', '-').replace('{', '').replace('}', '')}",
                aws.apigateway.ResourceArgs(
                    rest_api=rest_api.id, parent_id=resources[parent_path or "/"], path_part=part
                ),
                opts=child,
            ).id
        iam_auth = s.api.auth == "iam"
        deps: list[pulumi.Resource] = []
        fallbacks = [(path, FALLBACK_METHOD) for path in sorted({p for p, _ in ROUTES})]
        for path, method in [*ROUTES, *fallbacks]:
            slug = f"{name}-{method.lower()}{path.replace('/', '-').replace('{', '').replace('}', '')}".rstrip("-")
            params = {"method.request.path.id": True} if "{id}" in path else None
            m = aws.apigateway.Method(
                slug,
                aws.apigateway.MethodArgs(
                    rest_api=rest_api.id,
                    resource_id=resources[path],
                    http_method=method,
                    authorization="AWS_IAM" if iam_auth else "NONE",
                    api_key_required=not iam_auth,
                    request_parameters=params,
                    request_validator_id=validator.id if params else None,
                ),
                opts=child,
            )
            integration = aws.apigateway.Integration(
                slug,
                aws.apigateway.IntegrationArgs(
                    rest_api=rest_api.id,
                    resource_id=resources[path],
                    http_method=m.http_method,
                    type="AWS_PROXY",
                    integration_http_method="POST",
                    uri=function.invoke_arn,
                ),
                opts=child,
            )
            deps += [m, integration]
        aws.lambda_.Permission(
            f"{name}-invoke",
            aws.lambda_.PermissionArgs(
                action="lambda:InvokeFunction",
                function=function.name,
                principal="apigateway.amazonaws.com",
                source_arn=rest_api.execution_arn.apply(lambda arn: f"{arn}/{STAGE_NAME}/*/*"),
            ),
            opts=child,
        )
        shape = json.dumps({"routes": ROUTES, "auth": s.api.auth}, sort_keys=True)
        deployment = aws.apigateway.Deployment(
            name,
            aws.apigateway.DeploymentArgs(
                rest_api=rest_api.id,
                description="vsr API",
                triggers={"routes": hashlib.sha256(shape.encode()).hexdigest()},
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=deps),
        )
        access_logs = aws.cloudwatch.LogGroup(
            f"{name}-access",
            aws.cloudwatch.LogGroupArgs(retention_in_days=retention, tags=args.tags),
            opts=child,
        )
        stage_deps: list[pulumi.Resource] = []
        if s.api.manage_account_logging_role:
            logging_role = aws.iam.Role(
                f"{name}-apigw-logs",
                aws.iam.RoleArgs(
                    assume_role_policy=assume_role_policy("apigateway.amazonaws.com"),
                    description="API Gateway (account setting): write access logs to CloudWatch",
                    tags=args.tags,
                ),
                opts=child,
            )
            attach = aws.iam.RolePolicyAttachment(
                f"{name}-apigw-logs",
                aws.iam.RolePolicyAttachmentArgs(role=logging_role.name, policy_arn=APIGW_LOGS_POLICY),
                opts=child,
            )
            stage_deps.append(
                aws.apigateway.Account(
                    f"{name}-account",
                    aws.apigateway.AccountArgs(cloudwatch_role_arn=logging_role.arn),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[attach]),
                )
            )
        stage = aws.apigateway.Stage(
            f"{name}-{STAGE_NAME}",
            aws.apigateway.StageArgs(
                rest_api=rest_api.id,
                deployment=deployment.id,
                stage_name=STAGE_NAME,
                access_log_settings=aws.apigateway.StageAccessLogSettingsArgs(
                    destination_arn=access_logs.arn, format=ACCESS_LOG_FORMAT
                ),
                tags=args.tags,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=stage_deps),
        )
        aws.apigateway.MethodSettings(
            f"{name}-all-methods",
            aws.apigateway.MethodSettingsArgs(
                rest_api=rest_api.id,
                stage_name=stage.stage_name,
                method_path="*/*",
                settings=aws.apigateway.MethodSettingsSettingsArgs(
                    metrics_enabled=True,
                    logging_level="ERROR",
                    data_trace_enabled=False,
                    throttling_rate_limit=s.api.throttle_rate_limit,
                    throttling_burst_limit=s.api.throttle_burst_limit,
                ),
            ),
            opts=child,
        )
        self.api_key_id = None
        self.api_key_value = None
        if not iam_auth:
            plan = aws.apigateway.UsagePlan(
                name,
                aws.apigateway.UsagePlanArgs(
                    description="vsr default plan",
                    api_stages=[aws.apigateway.UsagePlanApiStageArgs(api_id=rest_api.id, stage=stage.stage_name)],
                    throttle_settings=aws.apigateway.UsagePlanThrottleSettingsArgs(
                        rate_limit=s.api.throttle_rate_limit, burst_limit=s.api.throttle_burst_limit
                    ),
                    quota_settings=aws.apigateway.UsagePlanQuotaSettingsArgs(
                        limit=s.api.quota_limit, period=s.api.quota_period
                    ),
                    tags=args.tags,
                ),
                opts=child,
            )
            key = aws.apigateway.ApiKey(
                name, aws.apigateway.ApiKeyArgs(enabled=True, description="vsr default key", tags=args.tags), opts=child
            )
            aws.apigateway.UsagePlanKey(
                name,
                aws.apigateway.UsagePlanKeyArgs(key_id=key.id, key_type="API_KEY", usage_plan_id=plan.id),
                opts=child,
            )
            self.api_key_id = key.id
            self.api_key_value = pulumi.Output.secret(key.value)

        # --- request size limit: AWS WAF ------------------------------------------------------
        def visibility(metric: str) -> aws.wafv2.WebAclVisibilityConfigArgs:
            return aws.wafv2.WebAclVisibilityConfigArgs(
                cloudwatch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True
            )

        acl = aws.wafv2.WebAcl(
            name,
            aws.wafv2.WebAclArgs(
                scope="REGIONAL",
                description="vsr API: reject oversized request bodies",
                default_action=aws.wafv2.WebAclDefaultActionArgs(allow=aws.wafv2.WebAclDefaultActionAllowArgs()),
                rules=[
                    aws.wafv2.WebAclRuleArgs(
                        name="max-body-size",
                        priority=0,
                        action=aws.wafv2.WebAclRuleActionArgs(block=aws.wafv2.WebAclRuleActionBlockArgs()),
                        statement=aws.wafv2.WebAclRuleStatementArgs(
                            size_constraint_statement=aws.wafv2.WebAclRuleStatementSizeConstraintStatementArgs(
                                comparison_operator="GT",
                                size=s.api.max_request_bytes,
                                # Bodies beyond WAF's inspection window count as too large.
                                field_to_match=aws.wafv2.WebAclRuleStatementSizeConstraintStatementFieldToMatchArgs(
                                    body=aws.wafv2.WebAclRuleStatementSizeConstraintStatementFieldToMatchBodyArgs(
                                        oversize_handling="MATCH"
                                    )
                                ),
                                text_transformations=[
                                    aws.wafv2.WebAclRuleStatementSizeConstraintStatementTextTransformationArgs(
                                        priority=0, type="NONE"
                                    )
                                ],
                            )
                        ),
                        visibility_config=visibility(f"{name}-max-body-size"),
                    )
                ],
                visibility_config=visibility(name),
                tags=args.tags,
            ),
            opts=child,
        )
        aws.wafv2.WebAclAssociation(
            name, aws.wafv2.WebAclAssociationArgs(resource_arn=stage.arn, web_acl_arn=acl.arn), opts=child
        )

        self.url = stage.invoke_url.apply(lambda u: u.rstrip("/") + "/")
        self.function_name = function.name
        self.rest_api_name = rest_api.name
        self.register_outputs({"url": self.url, "function_name": function.name})
