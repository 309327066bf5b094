"""Bicubic interpolation: the baseline every learned model is measured against."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class Bicubic(torch.nn.Module):
    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False).clamp(0.0, 1.0)
