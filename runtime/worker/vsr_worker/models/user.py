"""Models users bring as a ``.pth`` file (``--model path/to/file.pth``).

When spandrel is importable (it needs torchvision, which the CPU dev environment does not
install) it detects any architecture it knows. Without it, the two Real-ESRGAN architectures
are recognised from their parameter names (the official ``.pth`` files, with their
``params``/``params_ema`` wrapper): SRVGGNetCompact and x4 RRDBNet.
"""

from __future__ import annotations

import math
import os
import re
from typing import Dict, Tuple

import torch
from torch import nn

from vsr_client.codes import ErrorCode, VsrError
from vsr_worker.models.rrdbnet import RRDBNet
from vsr_worker.models.srvgg import SRVGGNetCompact


def _state_dict(path: str) -> Dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("params_ema", "params", "state_dict"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
            break
    if not isinstance(state, dict):
        raise VsrError(ErrorCode.INVALID_MODEL, f"{path}: not a state dict", "model")
    return state


def detect(state: Dict[str, torch.Tensor]) -> Tuple[nn.Module, int]:
    """Build the network a state dict belongs to; returns (network, native scale)."""
    if "conv_first.weight" in state and "conv_up1.weight" in state:
        num_in = state["conv_first.weight"].shape[1]
        if num_in != 3:
            raise VsrError(ErrorCode.INVALID_MODEL, "only x4 RRDBNet (3 input channels) is recognised", "model")
        blocks = {int(m.group(1)) for k in state for m in [re.match(r"body\.(\d+)\.rdb1\.conv1\.weight$", k)] if m}
        return (
            RRDBNet(
                num_in_ch=3,
                num_out_ch=state["conv_last.weight"].shape[0],
                num_feat=state["conv_first.weight"].shape[0],
                num_block=len(blocks),
                num_grow_ch=state["body.0.rdb1.conv1.weight"].shape[0],
            ),
            4,
        )
    if "body.0.weight" in state and "body.1.weight" in state and state["body.1.weight"].dim() == 1:
        convs = sorted(int(m.group(1)) for k in state for m in [re.match(r"body\.(\d+)\.bias$", k)] if m)
        last = state[f"body.{convs[-1]}.weight"]
        upscale = round(math.sqrt(last.shape[0] / 3))
        net = SRVGGNetCompact(
            num_in_ch=state["body.0.weight"].shape[1],
            num_out_ch=3,
            num_feat=state["body.0.weight"].shape[0],
            num_conv=len(convs) - 2,
            upscale=upscale,
        )
        return net, upscale
    raise VsrError(
        ErrorCode.INVALID_MODEL,
        "unrecognised architecture (SRVGGNetCompact and RRDBNet are built in; install spandrel for others)",
        "model",
    )


def load_pth(path: str, scale: int) -> nn.Module:
    from vsr_worker.models.upscaler import Upscaler

    try:
        import spandrel  # type: ignore[import-not-found]
    except ImportError:  # needs torchvision: absent from the CPU dev environment
        spandrel = None
    if spandrel is not None:
        desc = spandrel.ModelLoader().load_from_file(path)
        net, native = desc.model, int(desc.scale)
    else:
        state = _state_dict(path)
        net, native = detect(state)
        net.load_state_dict(state, strict=True)
    if native == scale:
        return Upscaler(net, native, scale)
    if native % scale == 0:
        return Upscaler(net, native, scale, "area")
    raise VsrError(ErrorCode.INVALID_SCALE, f"{path} is a x{native} model: x{scale} is not supported", "scale")


def user_model_info(path: str):  # -> ModelInfo (imported late: the registry imports this module)
    from vsr_worker.models.registry import ModelInfo

    if not os.path.isfile(path):
        raise VsrError(ErrorCode.INVALID_MODEL, f"model file not found: {path}", "model")
    return ModelInfo(
        name=path,
        architecture="user .pth (detected when loaded)",
        scales=(2, 4),
        receptive_field=32,  # unknown: a practical tile overlap
        licence="user supplied",
        source=os.path.abspath(path),
        build=lambda scale: load_pth(path, scale),
    )
