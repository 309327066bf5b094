"""The SDK is typed for its users: mypy --strict passes on client/, and a user's typo is a type error."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLIENT = ROOT / "client"


def mypy(*args: str, cwd: Path = ROOT, env_path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "MYPYPATH": env_path} if env_path else None
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", *args], cwd=cwd, capture_output=True, text=True, env=env
    )


def test_client_package_is_mypy_strict_clean() -> None:
    proc = mypy("client/vsr_client")  # strict and the pydantic plugin come from pyproject.toml
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success" in proc.stdout


def test_user_code_gets_type_errors_for_a_wrong_scale_and_a_misspelt_option(tmp_path: Path) -> None:
    user = tmp_path / "user.py"
    user.write_text(
        "from vsr_client import Client, JobAccepted, JobStatus, NotFound\n"
        "client = Client('http://127.0.0.1:8080')\n"
        "job: JobAccepted = client.submit('xxxx.mp4', scale=4, task='debug', env='onDemand', model='bicubic')\n"
        "status: JobStatus = client.status(job.job_id)\n"
        "client.submit('xxxx.mp4', scale=3)\n"
        "client.submit('xxxx.mp4', segmenttime=30)\n"
        "client.submit('xxxx.mp4', env='on-demand')\n"
    )
    proc = mypy("--strict", str(user), cwd=tmp_path, env_path=str(CLIENT))
    errors = [line for line in proc.stdout.splitlines() if ": error:" in line]
    assert [line.split(":")[1] for line in errors] == ["5", "6", "7"], proc.stdout
    assert 'incompatible type "Literal[3]"' in errors[0]
    assert 'Unexpected keyword argument "segmenttime"' in errors[1]
    assert "incompatible type \"Literal['on-demand']\"" in errors[2]


@pytest.mark.slow
def test_the_built_wheel_ships_py_typed(tmp_path: Path) -> None:
    source = shutil.copytree(CLIENT, tmp_path / "client", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    subprocess.run(  # from a copy: a build leaves build/ behind
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", source, "-w", tmp_path],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("vsr_client-*.whl")
    assert "vsr_client/py.typed" in zipfile.ZipFile(wheel).namelist()


def test_every_public_name_imports_from_the_package_root() -> None:
    code = "from vsr_client import *; import vsr_client as v; s = dir(); print([n for n in v.__all__ if n not in s])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
