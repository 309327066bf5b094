"""Run the real Pulumi program (``__main__.py``) under mocks, once per configuration.

Each configuration runs in its own process (``tests/stack/harness.py``): Pulumi's runtime and
config are process-global, so a fresh process per program is the only way to be sure one
run's state cannot leak into another. The runs happen in parallel, once per test session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]

# name -> (stack, extra environment). VSR_STACK_* overrides exercise the env-var source too.
VARIANTS: dict[str, tuple[str, dict[str, str]]] = {
    "prod": ("prod", {}),
    "dev": ("dev", {}),
    "inf2": ("prod", {"VSR_STACK_ACCELERATOR": "inf2", "VSR_STACK_COMPUTE__INSTANCE_TYPES": '["inf2.xlarge"]'}),
    "gpu": (
        "prod",
        {"VSR_STACK_ACCELERATOR": "gpu", "VSR_STACK_COMPUTE__INSTANCE_TYPES": '["g5.xlarge", "g6.xlarge"]'},
    ),
    "iam": (
        "dev",
        {
            "VSR_STACK_API__AUTH": "iam",
            "VSR_STACK_NETWORK__VPC_ID": "vpc-0123456789abcdef0",
            "VSR_STACK_NETWORK__SUBNET_IDS": '["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]',
            "VSR_STACK_WORKER_IMAGE__URI": "public.ecr.aws/example/vsr-worker:1.0.0",
            "VSR_STACK_COMPUTE__AMI_ID": "ami-0fedcba9876543210",
        },
    ),
    "invalid": ("prod", {"VSR_STACK_COMPUTE__MAX_VCPUS_SPOT": "0"}),
}


@dataclass
class Program:
    """What one run of the program registered."""

    resources: list[dict[str, Any]]
    calls: list[dict[str, Any]]
    exports: dict[str, Any]
    components_with_outputs: list[str]
    error: dict[str, str] | None
    archives: dict[str, str] = field(default_factory=dict)

    def of_type(self, typ: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["type"] == typ]

    def one(self, typ: str, name: str | None = None) -> dict[str, Any]:
        found = [r for r in self.of_type(typ) if name is None or r["name"] == name]
        assert len(found) == 1, f"expected one {typ} {name or ''}, found {[r['name'] for r in found]}"
        return found[0]

    def inputs(self, typ: str, name: str | None = None) -> dict[str, Any]:
        return self.one(typ, name)["inputs"]

    def policies(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every inline IAM / bucket / topic policy document, parsed."""
        for r in self.resources:
            if r["type"] in (
                "aws:iam/rolePolicy:RolePolicy",
                "aws:s3/bucketPolicy:BucketPolicy",
                "aws:sns/topicPolicy:TopicPolicy",
            ):
                yield r["name"], json.loads(r["inputs"]["policy"])


def _archives(tmp: Path) -> dict[str, str]:
    """Stand-ins for scripts/build_lambda.py's archives (the settings check they exist)."""
    paths = {}
    for key, member in (("FUNCTION_ARCHIVE", "vsr_api/handler.py"), ("LAYER_ARCHIVE", "python/av/__init__.py")):
        path = tmp / f"{key.lower()}.zip"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(member, "")
        paths[f"VSR_STACK_API__{key}"] = str(path)
    return paths


def _run(spec: dict[str, dict[str, Any]], tmp: Path, label: str) -> dict[str, Program]:
    spec_path, out = tmp / f"{label}-spec.json", tmp / f"{label}.json"
    spec_path.write_text(json.dumps(spec))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VSR_STACK_")}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.stack.harness", str(spec_path), str(out)],
        cwd=REPO,
        env=clean,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return {name: Program(**result, archives=spec[name]["env"]) for name, result in json.loads(out.read_text()).items()}


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Program]]:
    """``shared``: every variant, one after another in one process (prod last);
    ``fresh``: prod alone in a new process, to prove runs do not leak into each other."""
    tmp = tmp_path_factory.mktemp("stack")
    archives = _archives(tmp)
    spec = {name: {"stack": stack, "env": {**archives, **env}} for name, (stack, env) in VARIANTS.items()}
    shared = {name: spec[name] for name in [*sorted(set(spec) - {"prod"}), "prod"]}
    with ThreadPoolExecutor(max_workers=2) as pool:
        fresh = pool.submit(_run, {"prod": spec["prod"]}, tmp, "fresh")
        both = pool.submit(_run, shared, tmp, "shared")
        return {"shared": both.result(), "fresh": fresh.result()}


@pytest.fixture(scope="session")
def programs(runs: dict[str, dict[str, Program]]) -> dict[str, Program]:
    return runs["shared"]


@pytest.fixture(scope="session")
def prod(programs: dict[str, Program]) -> Program:
    return _ok(programs["prod"])


@pytest.fixture(scope="session")
def dev(programs: dict[str, Program]) -> Program:
    return _ok(programs["dev"])


@pytest.fixture(scope="session", params=["prod", "dev", "inf2", "gpu", "iam"])
def program(request: pytest.FixtureRequest, programs: dict[str, Program]) -> Program:
    return _ok(programs[request.param])


def _ok(p: Program) -> Program:
    assert p.error is None, p.error and p.error["traceback"]
    # A program that registered nothing would let every other assertion pass vacuously.
    assert len([r for r in p.resources if r["custom"]]) > 50
    return p


def settings_of(variant: str, program: Program):
    """The ``StackSettings`` a variant's run was built from: its stack's config and its
    environment (``Program.archives`` holds the whole environment the run had)."""
    from stack.settings import load_settings
    from tests.stack.harness import stack_config

    stack, _ = VARIANTS[variant]
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("VSR_STACK_")]:
            mp.delenv(key)
        for key, value in program.archives.items():
            mp.setenv(key, value)
        return load_settings(stack_config(stack))
