"""scripts/check_image_pins.py against PyPI: every worker image's pins exist for its Python and
platform, the GPU image's torch is built for its base image's CUDA, and pins that do not exist
fail. Skipped, with the reason, only when PyPI cannot be reached."""

from __future__ import annotations

import importlib.util
import sys
import urllib.request
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What Dockerfile.gpu asked for before: torch 2.13 from the cu128 index (which has no 2.13
# build, so pip took PyPI's CUDA 13 wheel) on a CUDA 12.8 base.
OLD_GPU = """\
ARG PYTHON_VERSION=3.12
FROM nvidia/cuda:12.8.1-base-ubuntu24.04 AS final
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
RUN pip install --extra-index-url "${TORCH_INDEX_URL}" "torch==2.13.0" "av==18.1.0"
"""


@pytest.fixture(scope="module")
def pins() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_image_pins", ROOT / "scripts" / "check_image_pins.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_image_pins"] = module
    spec.loader.exec_module(module)
    try:
        urllib.request.urlopen(f"{module.PYPI_SIMPLE}/av/", timeout=15).close()
    except OSError as exc:
        pytest.skip(f"PyPI unreachable ({exc}): the image pins are not checked")
    return module


def _rows(pins: ModuleType, tmp_path: Path, text: str) -> list:
    path = tmp_path / "Dockerfile.test"
    path.write_text(text)
    return pins.check_dockerfile(path)


def test_every_worker_image_pin_exists_for_its_python_and_platform(pins: ModuleType) -> None:
    paths = sorted((ROOT / "runtime" / "worker").glob("Dockerfile.*"))
    rows = [r for p in paths for r in pins.check_dockerfile(p)]
    failed = [r for r in rows if r.status == pins.FAIL]
    assert not failed, failed
    assert {r.image for r in rows} == {p.name for p in paths}
    # The Neuron packages are reported as unchecked, never as passed.
    unchecked = {r.requirement.split("==")[0] for r in rows if r.status == pins.NOT_CHECKABLE}
    assert unchecked == {"torch-neuron", "neuron-cc[tensorflow]", "torch-neuronx", "neuronx-cc"}
    (cuda,) = [r for r in rows if r.requirement.startswith("CUDA ")]
    assert cuda.image == "Dockerfile.gpu" and cuda.status == pins.PASS, cuda


def test_the_old_gpu_pin_fails_on_its_cuda(pins: ModuleType, tmp_path: Path) -> None:
    rows = {r.requirement: r for r in _rows(pins, tmp_path, OLD_GPU)}
    cuda = rows["CUDA nvidia/cuda:12.8.1-base-ubuntu24.04"]
    assert cuda.status == pins.FAIL and "CUDA 13.0" in cuda.detail and "base CUDA 12.8" in cuda.detail
    assert "download.pytorch.org/whl/cu128" in rows["torch==2.13.0"].detail  # said, not silently trusted


def test_pins_that_do_not_exist_fail(pins: ModuleType, tmp_path: Path) -> None:
    text = (
        "ARG PYTHON_VERSION=3.10\n"
        "FROM python:${PYTHON_VERSION}-slim-bookworm AS final\n"
        'RUN pip install "av==18.99.0" "av==18.1.0" "no-such-package-vsr-test==1.0"\n'
    )
    rows = _rows(pins, tmp_path, text)
    assert [r.status for r in rows] == [pins.FAIL] * 3, rows
    assert "PyPI has no av 18.99.0" in rows[0].detail
    assert "no av 18.1.0 wheel for cp310" in rows[1].detail  # av 18 ships no CPython 3.10 wheel
