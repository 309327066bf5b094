"""The Lambda package stays light: no torch, no worker, in its imports or its dependencies."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_handler_imports_neither_torch_nor_the_worker() -> None:
    code = (
        "import sys, vsr_api.handler, vsr_api.adapters.av_prober, vsr_api.adapters.batch_scheduler, "
        "vsr_api.adapters.dynamo_store, vsr_api.adapters.s3_storage; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'vsr_worker', 'numpy')))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_runtime_dependencies_have_pyav_and_no_torch() -> None:
    project = tomllib.loads((ROOT / "runtime" / "lambda" / "pyproject.toml").read_text())["project"]
    names = {d.split(">")[0].split("=")[0].split("<")[0].strip() for d in project["dependencies"]}
    assert {"av", "boto3", "vsr-client", "aws-lambda-powertools"} <= names
    assert not names & {"torch", "vsr-worker", "numpy"}
    assert project["scripts"]["vsr-local"] == "vsr_api.local.cli:main"
