"""Which inference backend runs the upscale stage: one answer for the stack, the API, the
local engine and the worker.

Two names meet here. The stack's *accelerator* (``inf1``, ``inf2``, ``gpu``, ``cpu``) says
what hardware the upscale hosts have; a *device* names the backend that runs the model on it
(``neuron``, ``neuronx``, ``cuda``, ``ncnn``, ``cpu``, plus ``auto`` and the test-only
``jit``). :func:`device_for_accelerator` maps the first to the second; the stack writes the
result into the upscale job definition (``VSR_DEVICE``) and the Lambda's environment (so it is
in every manifest). :func:`resolve_device` turns a requested device into the one that runs,
given what the host has.

The rule that matters on an accelerator host: a device that was asked for by name and is
missing is an error naming the device, never a quiet fall-back to the CPU (an Inf1 job that
ran torch on four vCPUs would take days and look like it worked). Only ``auto`` chooses.

This module must stay importable on Python 3.10 with no third-party imports beyond the
contract (the Inf1 worker image and the Lambda both import it).
"""

from __future__ import annotations

from collections.abc import Callable

from vsr_client.codes import ErrorCode, VsrError

# Every backend name the worker knows. ``jit`` is the Neuron code path traced with
# torch.jit on the CPU: how that path is tested without Inferentia.
DEVICES: tuple[str, ...] = ("auto", "cpu", "ncnn", "cuda", "neuron", "neuronx", "jit")
# What ``auto`` tries, fastest first. ncnn is 2-2.7x faster than torch on CPU (docs/models.md).
AUTO_ORDER: tuple[str, ...] = ("cuda", "neuronx", "neuron", "ncnn", "cpu")
# Devices that need hardware or packages a host may lack; asking for one that is missing fails.
ACCELERATED: tuple[str, ...] = ("cuda", "neuron", "neuronx")
# Backends that run on the CPU whatever the host has.
CPU_DEVICES: tuple[str, ...] = ("cpu", "ncnn", "jit")

# The stack's accelerator -> the upscale device. On CPU hosts the fastest CPU backend (ncnn);
# a model without ncnn files runs on torch instead (same hardware, see resolve_device).
ACCELERATOR_DEVICES: dict[str, str] = {
    "inf1": "neuron",
    "inf2": "neuronx",
    "gpu": "cuda",
    "cpu": "ncnn",
}
DEVICE_ENV = "VSR_DEVICE"

# ``missing(device)`` -> None when the host can run ``device``, else the reason it cannot.
MissingProbe = Callable[[str], str | None]


def device_for_accelerator(accelerator: str) -> str:
    """The upscale device of a stack whose upscale hosts are ``accelerator``."""
    try:
        return ACCELERATOR_DEVICES[str(accelerator)]
    except KeyError:
        raise ValueError(
            f"unknown accelerator {accelerator!r}; expected one of {', '.join(ACCELERATOR_DEVICES)}"
        ) from None


def check_device_name(device: str) -> str:
    if device not in DEVICES:
        raise VsrError(
            ErrorCode.INVALID_ARGUMENT, f"unknown device {device!r}; expected one of {', '.join(DEVICES)}", "device"
        )
    return device


def resolve_device(requested: str, *, model_has_ncnn: bool, missing: MissingProbe) -> str:
    """The backend that runs a model on this host when ``requested`` was asked for.

    - ``auto``: the first of :data:`AUTO_ORDER` the host has (ncnn only for models with
      ncnn files), else ``cpu``.
    - ``ncnn`` for a model without ncnn files: ``cpu`` (torch on the same CPU).
    - a named device the host lacks: :class:`VsrError` ``device_unavailable`` naming it.
    """
    check_device_name(requested)
    if requested == "auto":
        for device in AUTO_ORDER:
            if device == "ncnn" and not model_has_ncnn:
                continue
            if device == "cpu" or missing(device) is None:
                return device
        return "cpu"
    if requested == "ncnn" and not model_has_ncnn:
        return "cpu"
    if requested in ("cpu", "jit"):
        return requested
    reason = missing(requested)
    if reason is not None:
        raise VsrError(
            ErrorCode.DEVICE_UNAVAILABLE,
            f"device {requested!r} is not available on this host: {reason}",
            "device",
        )
    return requested


__all__ = [
    "ACCELERATED",
    "ACCELERATOR_DEVICES",
    "AUTO_ORDER",
    "CPU_DEVICES",
    "DEVICES",
    "DEVICE_ENV",
    "MissingProbe",
    "check_device_name",
    "device_for_accelerator",
    "resolve_device",
]
