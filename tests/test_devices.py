"""One device-resolution rule for the stack, the API, the local engine and the worker."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from vsr_client.contract import ErrorCode, ExitCode, Manifest, VsrError
from vsr_client.devices import (
    ACCELERATOR_DEVICES,
    AUTO_ORDER,
    device_for_accelerator,
    resolve_device,
)


def probe(*present: str):
    """A host that has exactly ``present`` (besides the CPU)."""

    def missing(device: str) -> str | None:
        return None if device in present else f"no {device} here"

    return missing


@pytest.mark.parametrize(
    ("accelerator", "device"), [("inf1", "neuron"), ("inf2", "neuronx"), ("gpu", "cuda"), ("cpu", "ncnn")]
)
def test_each_accelerator_selects_its_own_backend(accelerator: str, device: str) -> None:
    assert device_for_accelerator(accelerator) == device


def test_every_stack_accelerator_has_a_device() -> None:
    from stack.settings import Accelerator

    assert {a.value for a in Accelerator} == set(ACCELERATOR_DEVICES)
    with pytest.raises(ValueError, match="unknown accelerator"):
        device_for_accelerator("tpu")


@pytest.mark.parametrize("device", ["cuda", "neuron", "neuronx"])
def test_a_named_accelerator_the_host_lacks_is_an_error_naming_it(device: str) -> None:
    with pytest.raises(VsrError) as exc:
        resolve_device(device, model_has_ncnn=True, missing=probe("ncnn"))
    assert exc.value.code is ErrorCode.DEVICE_UNAVAILABLE
    assert repr(device) in exc.value.message and f"no {device} here" in exc.value.message
    assert exc.value.exit_code == ExitCode.UNAVAILABLE == 69


def test_a_present_accelerator_is_used() -> None:
    assert resolve_device("neuron", model_has_ncnn=True, missing=probe("neuron", "ncnn")) == "neuron"


@pytest.mark.parametrize(
    ("present", "has_ncnn", "expected"),
    [
        (("cuda", "neuron", "ncnn"), True, "cuda"),
        (("neuronx", "ncnn"), True, "neuronx"),
        (("neuron", "ncnn"), True, "neuron"),
        (("ncnn",), True, "ncnn"),
        (("ncnn",), False, "cpu"),  # bicubic has no ncnn files
        ((), True, "cpu"),
    ],
)
def test_auto_picks_the_fastest_backend_present(present: tuple[str, ...], has_ncnn: bool, expected: str) -> None:
    assert resolve_device("auto", model_has_ncnn=has_ncnn, missing=probe(*present)) == expected
    assert AUTO_ORDER.index(expected) == min(
        AUTO_ORDER.index(d) for d in (*present, "cpu") if d in AUTO_ORDER and (has_ncnn or d != "ncnn")
    )


def test_ncnn_for_a_model_without_ncnn_files_runs_torch_on_the_same_cpu() -> None:
    assert resolve_device("ncnn", model_has_ncnn=False, missing=probe()) == "cpu"


def test_unknown_device_names_are_rejected_everywhere() -> None:
    with pytest.raises(VsrError) as exc:
        resolve_device("tpu", model_has_ncnn=True, missing=probe())
    assert exc.value.code is ErrorCode.INVALID_ARGUMENT
    with pytest.raises(ValueError, match="unknown device"):
        Manifest.model_validate(
            {
                "job_id": "j",
                "source": "s",
                "work": "w",
                "output": "o.mp4",
                "device": "tpu",
                "plan": {"duration": 1, "segment_time": 1, "count": 1},
            }
        )


def test_this_host_probe_reports_why_an_accelerator_is_missing() -> None:
    """The real probe on this CI host (no GPU, no Inferentia): reasons a user can act on."""
    from vsr_worker.host_devices import host_device, missing

    assert missing("cpu") is None and missing("ncnn") is None
    assert "/dev/neuron" in (missing("neuron") or "")
    assert "CUDA" in (missing("cuda") or "")
    assert host_device("auto", model_has_ncnn=True) == "ncnn"


@pytest.mark.parametrize("device", ["neuron", "cuda"])
def test_worker_on_a_host_without_its_device_fails_with_one_line(tmp_path, make_case, device: str) -> None:
    """`vsr-worker run --device neuron` on a CPU host: exit 69, one line naming the device, no output."""
    src = make_case("cfr25")
    out = tmp_path / "out.mp4"
    env = {k: v for k, v in os.environ.items() if k != "VSR_DEVICE"}
    proc = subprocess.run(
        [sys.executable, "-m", "vsr_worker", "run", str(src), "-o", str(out), "--device", device, "-q"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 69, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vsr-worker: error [device_unavailable]: "), proc.stderr
    assert f"device {device!r}" in lines[0]
    assert not out.exists() and list(tmp_path.iterdir()) == []
