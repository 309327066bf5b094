"""scripts/build_lambda.py: PyAV goes to the layer, archives are byte-identical across builds, and
the wheels are resolved for the runtime the stack deploys, with the workers' PyAV line."""

from __future__ import annotations

import importlib.util
import os
import re
import zipfile
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from stack.api import RUNTIME

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def build_lambda() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_lambda", REPO / "scripts" / "build_lambda.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _install_tree(root: Path, mtime: int) -> None:
    """What `pip install --target` leaves: packages, dist-info, byte code, console scripts."""
    files = {
        "vsr_api/__init__.py": "",
        "vsr_api/handler.py": "def handler(event, context): ...\n",
        "vsr_api/__pycache__/handler.cpython-311.pyc": "junk",
        "vsr_api-0.1.0.dist-info/direct_url.json": '{"url": "file:///home/someone/vsr"}',
        "vsr_api-0.1.0.dist-info/METADATA": "Name: vsr-api\n",
        "vsr_api-0.1.0.dist-info/RECORD": (
            f"vsr_api/handler.py,sha256=abc,30\nvsr_api-0.1.0.dist-info/direct_url.json,sha256={mtime},40\n"
        ),
        "pydantic/__init__.py": "",
        "av/__init__.py": "",
        "av/_core.abi3.so": "elf",
        "av.libs/libavcodec.so.61": "elf",
        "av-18.1.0.dist-info/METADATA": "Name: av\n",
        "bin/vsr": "#!/usr/bin/python\n",
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        os.utime(path, (mtime, mtime))


def _build(module: ModuleType, tmp: Path, label: str, mtime: int) -> tuple[Path, Path]:
    staging, layer = tmp / label / "function", tmp / label / "layer"
    _install_tree(staging, mtime)
    module.clean_tree(staging)
    module.split_layer(staging, layer)
    function_zip, layer_zip = tmp / label / "function.zip", tmp / label / "layer.zip"
    module.deterministic_zip(staging, function_zip)
    module.deterministic_zip(layer, layer_zip)
    return function_zip, layer_zip


def test_pyav_goes_to_the_layer_under_python(build_lambda: ModuleType, tmp_path: Path) -> None:
    function_zip, layer_zip = _build(build_lambda, tmp_path, "a", 1_700_000_000)
    assert sorted(zipfile.ZipFile(layer_zip).namelist()) == [
        "python/av-18.1.0.dist-info/METADATA",
        "python/av.libs/libavcodec.so.61",
        "python/av/__init__.py",
        "python/av/_core.abi3.so",
    ]
    names = zipfile.ZipFile(function_zip).namelist()
    assert names == sorted(names)
    assert "vsr_api/handler.py" in names and "pydantic/__init__.py" in names
    assert not [n for n in names if n.startswith(("av", "bin/")) or n.endswith((".pyc", "direct_url.json"))]
    record = zipfile.ZipFile(function_zip).read("vsr_api-0.1.0.dist-info/RECORD").decode()
    assert record == "vsr_api/handler.py,sha256=abc,30\n"


def test_archives_are_byte_identical_whatever_the_file_times(build_lambda: ModuleType, tmp_path: Path) -> None:
    first = _build(build_lambda, tmp_path, "a", 1_700_000_000)
    second = _build(build_lambda, tmp_path, "b", 1_800_000_000)
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes()
    info = zipfile.ZipFile(first[0]).getinfo("vsr_api/handler.py")
    assert info.date_time == (1980, 1, 1, 0, 0, 0)
    assert (info.external_attr >> 16) & 0o777 == 0o644


def _option_values(args: tuple[str, ...], option: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == option]


def test_wheels_are_resolved_for_the_lambda_runtime_the_stack_deploys(build_lambda: ModuleType) -> None:
    args = build_lambda.PLATFORM_ARGS
    python = _option_values(args, "--python-version")[0]
    assert f"python{python}" == RUNTIME  # python3.12: Amazon Linux 2023
    platforms = _option_values(args, "--platform")
    glibc = [tuple(map(int, m.groups())) for p in platforms if (m := re.fullmatch(r"manylinux_(\d+)_(\d+)_x86_64", p))]
    # AL2023's glibc is 2.34: every manylinux tag up to it (pip does not widen a --platform), none above.
    assert max(glibc) == (2, 34) and (2, 28) in glibc and "manylinux2014_x86_64" in platforms
    assert sorted(glibc) == [(2, m) for m in range(17, 35)]
    assert "--only-binary=:all:" in args


def test_the_layer_ships_the_workers_pyav_major(build_lambda: ModuleType) -> None:
    (layer,) = [Requirement(r) for r in build_lambda.LAYER_REQUIREMENTS if Requirement(r).name == "av"]
    workers = {}
    for flavour in ("cpu", "gpu", "neuronx"):  # the Python 3.11+ images; Inf1's 3.10 has no av 18 wheel
        text = (REPO / "runtime" / "worker" / f"Dockerfile.{flavour}").read_text()
        workers[flavour] = Version(re.search(r"^ARG AV_VERSION=(\S+)$", text, re.M).group(1))
    assert len({v.major for v in workers.values()}) == 1, workers
    for flavour, version in workers.items():
        assert version in layer.specifier, (flavour, version, layer)
    assert not layer.specifier.contains(f"{next(iter(workers.values())).major + 1}.0")  # one major, not "newest"
