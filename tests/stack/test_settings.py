"""Settings: Pulumi config + VSR_STACK_* env, validated; invalid config fails with one readable message."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from stack.settings import Accelerator, SettingsError, StackSettings, load_settings
from tests.stack.conftest import Program
from tests.stack.harness import stack_config


@pytest.fixture(autouse=True)
def built_archives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key in [k for k in __import__("os").environ if k.startswith("VSR_STACK_")]:
        monkeypatch.delenv(key)
    paths = {}
    for name in ("function", "layer"):
        path = tmp_path / f"{name}.zip"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("x.py", "")
        paths[name] = str(path)
    monkeypatch.setenv("VSR_STACK_API__FUNCTION_ARCHIVE", paths["function"])
    monkeypatch.setenv("VSR_STACK_API__LAYER_ARCHIVE", paths["layer"])
    return paths


def _error(config: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as info:
        load_settings(config)
    return str(info.value)


def test_prod_and_dev_configs_load() -> None:
    prod = load_settings(stack_config("prod"))
    assert prod.accelerator is Accelerator.INF1 and prod.instance_types == ["inf1.xlarge"]
    assert prod.database.point_in_time_recovery and prod.api.auth == "apikey"
    assert prod.compute.max_vcpus_spot == 256 and prod.neuron_devices == 1
    dev = load_settings(stack_config("dev"))
    assert dev.accelerator is Accelerator.CPU and dev.compute.max_vcpus_spot == 8
    assert not dev.database.point_in_time_recovery and dev.storage.force_destroy


def test_defaults_are_valid_and_cheap() -> None:
    s = load_settings({})
    assert s.accelerator is Accelerator.CPU and s.compute.min_vcpus == 0
    assert s.ami_ssm_parameter is None and s.dockerfile == "runtime/worker/Dockerfile.cpu"


def test_environment_overrides_pulumi_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VSR_STACK_COMPUTE__MAX_VCPUS_SPOT", "32")
    s = load_settings(stack_config("prod"))
    assert s.compute.max_vcpus_spot == 32
    assert s.compute.max_vcpus_on_demand == 64  # the rest of vsr:compute still comes from config


@pytest.mark.parametrize(
    ("config", "key", "words"),
    [
        ({"vsr:accelerator": "inf3"}, "vsr:accelerator", "'inf1', 'inf2', 'gpu' or 'cpu'"),
        (
            {"vsr:compute": json.dumps({"max_vcpus_spot": 0})},
            "vsr:compute.max_vcpus_spot",
            "greater than or equal to 1",
        ),
        (
            {"vsr:accelerator": "inf1", "vsr:compute": json.dumps({"instance_types": ["g5.xlarge"]})},
            "vsr:compute.instance_types",
            "do not match accelerator inf1",
        ),
        (
            {"vsr:accelerator": "inf1", "vsr:compute": json.dumps({"instance_types": ["inf1.2xlarge"]})},
            "vsr:compute.upscale",
            "two upscale jobs fit on one inf1.2xlarge",
        ),
        (
            {"vsr:compute": json.dumps({"upscale": {"vcpus": 64, "memory_mib": 4096, "timeout_seconds": 600}})},
            "vsr:compute.upscale",
            "fit none of",
        ),
        (
            {"vsr:compute": json.dumps({"spot_allocation_strategy": "BEST_FIT"})},
            "vsr:compute.spot_allocation_strategy",
            "SPOT_PRICE_CAPACITY_OPTIMIZED",
        ),
        ({"vsr:limits": json.dumps({"segment_time_min": 400})}, "vsr:limits.segment_time_min", "segment_time_max"),
        ({"vsr:limits": json.dumps({"max_input_bytes": 10})}, "vsr:limits.max_input_bytes", "greater than"),
        ({"vsr:storage": json.dumps({"work_prefix": "inputs/tmp/"})}, "vsr:storage.work_prefix", "overlaps"),
        ({"vsr:storage": json.dumps({"input_prefix": "../x/"})}, "vsr:storage.input_prefix", "relative key prefix"),
        ({"vsr:monitoring": json.dumps({"log_retention_days": 2})}, "vsr:monitoring.log_retention_days", "retention"),
        ({"vsr:api": json.dumps({"auth": "cognito"})}, "vsr:api.auth", "'apikey' or 'iam'"),
        (
            {"vsr:api": json.dumps({"throttle_rate_limit": 50, "throttle_burst_limit": 5})},
            "vsr:api.throttle_burst_limit",
            "at least",
        ),
        ({"vsr:api": json.dumps({"max_request_bytes": 65536})}, "vsr:api.max_request_bytes", "less than or equal"),
        ({"vsr:network": json.dumps({"vpc_id": "vpc-0123456789abcdef0"})}, "vsr:network.subnet_ids", "required"),
        ({"vsr:worker_image": json.dumps({"uri": "not an image"})}, "vsr:worker_image.uri", "match pattern"),
        ({"vsr:compute": json.dumps({"ami_id": "ami-XYZ"})}, "vsr:compute.ami_id", "match pattern"),
        ({"vsr:acelerator": "gpu"}, "vsr:acelerator", "unknown setting"),
        ({"vsr:compute": json.dumps({"max_vcpu": 4})}, "vsr:compute.max_vcpu", "Extra inputs"),
        (
            {"vsr:accelerator": "inf2", "vsr:compute": json.dumps({"instance_types": ["inf2.new", "inf2.8xlarge"]})},
            "vsr:compute.upscale",
            "two upscale jobs fit on one inf2.8xlarge",
        ),
    ],
)
def test_invalid_config_names_the_key(config: dict[str, str], key: str, words: str) -> None:
    message = _error(config)
    assert message.startswith("invalid stack settings:")
    line = next((ln for ln in message.splitlines() if ln.strip().startswith(f"{key}:")), None)
    assert line is not None, message
    assert words in line, line
    assert "Traceback" not in message


def test_missing_lambda_archive_says_how_to_build_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VSR_STACK_API__FUNCTION_ARCHIVE", "build/lambda/does-not-exist.zip")
    message = _error({})
    assert "vsr:api.function_archive" in message and "scripts/build_lambda.py" in message


def test_all_errors_are_reported_at_once() -> None:
    message = _error({"vsr:accelerator": "x", "vsr:database": json.dumps({"job_ttl_days": 0})})
    assert "vsr:accelerator" in message and "vsr:database.job_ttl_days" in message


def test_every_field_is_documented() -> None:
    def walk(model: type, prefix: str) -> list[str]:
        undocumented = []
        for name, info in model.model_fields.items():
            ann = info.annotation
            if isinstance(ann, type) and hasattr(ann, "model_fields"):
                undocumented += walk(ann, f"{prefix}{name}.")
            elif not info.description:
                undocumented.append(prefix + name)
        return undocumented

    assert walk(StackSettings, "") == []


def test_invalid_config_fails_the_program_with_the_message(programs: dict[str, Program]) -> None:
    p = programs["invalid"]
    assert p.error is not None and p.error["type"] == "RunError"
    assert p.error["message"].startswith("invalid stack settings:")
    assert "vsr:compute.max_vcpus_spot: Input should be greater than or equal to 1 (got '0')" in p.error["message"]
    assert [r for r in p.resources if r["custom"]] == []


def test_the_running_stacks_config_is_read_from_pulumis_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from stack.settings import pulumi_config

    monkeypatch.setenv("PULUMI_CONFIG", json.dumps({"vsr:accelerator": "gpu", "aws:region": "us-west-2"}))
    assert pulumi_config() == {"vsr:accelerator": "gpu"}
    assert load_settings(pulumi_config()).accelerator is Accelerator.GPU
