"""Every SSM parameter the stack can read, and every one the docs tell users to read, is one AWS
publishes: checked with moto's GetParameter, which answers from moto's bundled copy of AWS's
public ECS AMI parameters (``moto/ssm/resources/ecs/optimized_amis/<region>.json.gz``), in every
region the stack configurations name. A name AWS does not publish fails ``pulumi preview``;
here it fails this test instead."""

from __future__ import annotations

import re
from collections.abc import Iterator

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError
from moto import mock_aws

from stack.settings import ACCELERATOR_PROFILES, REPO_ROOT
from tests.stack.conftest import Program
from tests.stack.harness import REGION as HARNESS_REGION

SSM_CALL = "aws:ssm/getParameter:getParameter"
PUBLIC_PARAMETER = re.compile(r"/aws/service/[A-Za-z0-9_.\-/]+[A-Za-z0-9_]")
DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def _stack_regions() -> set[str]:
    regions = {HARNESS_REGION}
    for path in REPO_ROOT.glob("Pulumi.*.yaml"):
        config = yaml.safe_load(path.read_text()).get("config", {})
        if "aws:region" in config:
            regions.add(config["aws:region"])
    return regions


@pytest.fixture(scope="module")
def published() -> Iterator:
    """``published(region, name)``: the parameter's value, or None if AWS does not publish it."""
    with mock_aws():

        def lookup(region: str, name: str) -> str | None:
            try:
                return boto3.client("ssm", region_name=region).get_parameter(Name=name)["Parameter"]["Value"]
            except ClientError as exc:
                assert exc.response["Error"]["Code"] == "ParameterNotFound", exc
                return None

        yield lookup


def test_the_lookup_tells_published_names_from_made_up_ones(published) -> None:
    # "inf" is an Amazon Linux 2 name; AL2023's Neuron AMI is under "neuron".
    assert published("us-east-1", "/aws/service/ecs/optimized-ami/amazon-linux-2/inf/recommended/image_id")
    assert published("us-east-1", "/aws/service/ecs/optimized-ami/amazon-linux-2023/inf/recommended/image_id") is None


def test_every_parameter_the_stack_reads_is_published(programs: dict[str, Program], published) -> None:
    read = {c["args"]["name"] for p in programs.values() for c in p.calls if c["token"] == SSM_CALL}
    defaults = {p.ami_ssm_parameter for p in ACCELERATOR_PROFILES.values() if p.ami_ssm_parameter}
    assert defaults and read  # the Inferentia variants read one; a test over nothing proves nothing
    assert read <= defaults, f"the stack reads parameters no profile names: {read - defaults}"
    for region in sorted(_stack_regions()):
        for name in sorted(read | defaults):
            value = published(region, name)
            assert value is not None, f"{name} is not published in {region}"
            assert re.fullmatch(r"ami-[0-9a-f]{8,17}", value), value


def test_every_parameter_the_docs_name_is_published(published) -> None:
    """Parameters, or paths that hold parameters (``aws ssm get-parameters-by-path``)."""
    named = {(doc.name, m.group(0)) for doc in DOCS for m in PUBLIC_PARAMETER.finditer(doc.read_text())}
    assert any(doc == "deploy.md" for doc, _ in named)

    def exists(name: str) -> bool:
        if published("us-east-1", name) is not None:
            return True
        return bool(boto3.client("ssm", region_name="us-east-1").get_parameters_by_path(Path=name)["Parameters"])

    missing = sorted((doc, name) for doc, name in named if not exists(name))
    assert not missing, f"documented SSM parameters that AWS does not publish: {missing}"
