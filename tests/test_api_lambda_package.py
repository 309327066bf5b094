"""The Lambda package stays light: no torch, no worker, in its imports or its dependencies."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_handler_imports_neither_torch_nor_the_worker() -> None:
    code = (
        "import sys, vsr_api.handler, vsr_api.adapters.av_prober, vsr_api.adapters.batch_scheduler, "
        "vsr_api.adapters.dynamo_store, vsr_api.adapters.s3_storage; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'vsr_worker', 'numpy', 'uvicorn', 'starlette')))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_runtime_dependencies_have_pyav_and_no_torch() -> None:
    project = tomllib.loads((ROOT / "runtime" / "lambda" / "pyproject.toml").read_text())["project"]
    names = {d.split(">")[0].split("=")[0].split("<")[0].strip() for d in project["dependencies"]}
    assert {"av", "boto3", "vsr-client", "aws-lambda-powertools"} <= names
    # The local server's HTTP stack is an extra (vsr-api[local]) the Lambda archive never installs.
    assert not names & {"torch", "vsr-worker", "numpy", "uvicorn", "starlette"}
    assert {"uvicorn", "starlette"} <= {d.split(">")[0].strip() for d in project["optional-dependencies"]["local"]}
    assert project["scripts"]["vsr-local"] == "vsr_api.local.cli:main"


def test_settings_read_the_stacks_environment_variables(monkeypatch) -> None:
    from vsr_api.settings import ApiSettings

    env = {
        "VSR_BUCKET": "b",
        "VSR_TABLE": "t",
        "VSR_QUEUE_SPOT": "qs",
        "VSR_QUEUE_ON_DEMAND": "qo",
        "VSR_QUEUE_CPU_SPOT": "qcs",
        "VSR_QUEUE_CPU_ON_DEMAND": "qco",
        "VSR_JOB_DEFINITION_SPLIT": "js",
        "VSR_JOB_DEFINITION_UPSCALE": "ju",
        "VSR_JOB_DEFINITION_MERGE": "jm",
        "VSR_INPUT_PREFIX": "in",
        "VSR_OUTPUT_PREFIX": "out/",
        "VSR_WORK_PREFIX": "work/",
        "VSR_MAX_INPUT_BYTES": "1000",
        "VSR_MAX_DURATION_SECONDS": "60",
        "VSR_SEGMENT_TIME_MIN": "2",
        "VSR_SEGMENT_TIME_MAX": "30",
        "VSR_DEFAULT_MODEL": "realesr-animevideov3",
        "VSR_JOB_TTL_DAYS": "7",
        "VSR_STACK": "vsr-prod",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    s = ApiSettings().check_cloud()
    assert (s.queue("spot"), s.queue("onDemand")) == ("qs", "qo")
    assert [s.queue(env, stage) for env in ("spot", "onDemand") for stage in ("split", "merge")] == [
        "qcs",
        "qcs",
        "qco",
        "qco",
    ]
    assert s.stage_definitions() == {"split": "js", "upscale": "ju", "merge": "jm"}
    assert (s.input_prefix, s.max_input_bytes, s.segment_time_min, s.segment_time_max) == ("in/", 1000, 2.0, 30.0)
    assert (s.default_model, s.job_ttl_days, s.max_duration_seconds) == ("realesr-animevideov3", 7, 60.0)
    assert s.stack == "vsr-prod"
    for name in ("VSR_TABLE", "VSR_STACK", "VSR_QUEUE_CPU_SPOT"):
        monkeypatch.delenv(name)
        with pytest.raises(ValueError, match=name):
            ApiSettings().check_cloud()
        monkeypatch.setenv(name, env[name])


def test_every_variable_the_stack_sets_is_one_the_api_reads() -> None:
    from stack.api import lambda_environment
    from tests.api.moto_world import stack_settings
    from vsr_api.settings import ApiSettings

    env = lambda_environment(
        stack="vsr-prod",
        settings=stack_settings("inf1"),
        bucket="b",
        table="t",
        queues={"spot": "qs", "on_demand": "qo", "cpu_spot": "cs", "cpu_on_demand": "co"},
        job_definitions={"split": "js", "upscale": "ju", "merge": "jm"},
    )
    read = {f"VSR_{name.upper()}" for name in ApiSettings.model_fields}
    assert set(env) <= read, sorted(set(env) - read)
