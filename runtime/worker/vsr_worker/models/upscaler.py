"""A x4 network brought to the requested scale (the x2 routes of docs/models.md)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vsr_client.codes import ErrorCode, VsrError


class Upscaler(nn.Module):
    """A network of native scale ``native`` brought to ``scale``, output clamped to [0, 1]."""

    def __init__(self, net: nn.Module, native: int, scale: int, downscale: str = "area") -> None:
        super().__init__()
        if scale > native or native % scale:
            raise VsrError(ErrorCode.INVALID_SCALE, f"cannot make x{scale} from a x{native} network", "scale")
        self.net = net
        self.native = native
        self.scale = scale
        self.downscale = downscale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        if self.scale != self.native:
            factor = self.native // self.scale
            if self.downscale == "bicubic":
                y = F.interpolate(y, scale_factor=1.0 / factor, mode="bicubic", align_corners=False)
            else:
                y = F.avg_pool2d(y, factor)
        return y.clamp(0.0, 1.0)
