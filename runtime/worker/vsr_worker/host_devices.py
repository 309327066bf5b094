"""What this host can run: the ``missing`` probe behind :func:`vsr_client.devices.resolve_device`.

Each check is cheap and imports only what it must: the Neuron packages are imported only
when a ``/dev/neuron*`` device exists (importing torch-neuron takes seconds), and torch only
when an NVIDIA device node exists (``/dev/nvidia*``, or ``/dev/dxg`` under WSL2): ``auto``
on a CPU host resolves without importing torch.
"""

from __future__ import annotations

import glob
import importlib.util
from typing import Optional

from vsr_client.devices import resolve_device

_NEURON_PACKAGES = {"neuron": "torch_neuron", "neuronx": "torch_neuronx"}
_GPU_DEVICE_NODES = ("/dev/nvidia[0-9]*", "/dev/dxg")


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def missing(device: str) -> Optional[str]:
    """None when this host can run ``device``; otherwise a one-line reason a user can act on."""
    if device in ("cpu", "jit"):
        return None
    if device == "ncnn":
        return None if _has_module("ncnn") else "the ncnn package is not installed (pip install ncnn)"
    if device == "cuda":
        if not any(glob.glob(pattern) for pattern in _GPU_DEVICE_NODES):
            return "no NVIDIA GPU device (/dev/nvidia*): no CUDA GPU here, or none is mapped into the container"
        import torch

        if torch.cuda.is_available():
            return None
        build = torch.version.cuda or "none (a CPU-only torch build)"
        return f"torch {torch.__version__} sees no CUDA GPU (CUDA build: {build}; is a GPU mapped into the container?)"
    if device in _NEURON_PACKAGES:
        if not glob.glob("/dev/neuron*"):
            return "no /dev/neuron* device (is the Neuron driver loaded and the device mapped into the container?)"
        package = _NEURON_PACKAGES[device]
        if not _has_module(package):
            return f"{package} is not installed (use the {device} worker image)"
        return None
    return f"unknown device {device!r}"


def host_device(requested: str, model_has_ncnn: bool) -> str:
    """:func:`resolve_device` with this host's probe."""
    return resolve_device(requested, model_has_ncnn=model_has_ncnn, missing=missing)
