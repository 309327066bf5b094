"""The torch backends: ``cpu`` (fp32, intra-op threads) and ``cuda`` (fp16, channels-last)."""

from __future__ import annotations

import torch
from torch import nn


class TorchBackend:
    fixed_tile = None
    fixed_batch = None

    def __init__(self, module: nn.Module, device: str = "cpu", half: bool = False, channels_last: bool = False) -> None:
        self.device = torch.device(device)
        self.dtype = torch.float16 if half else torch.float32
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.module = module.eval().to(self.device, dtype=self.dtype, memory_format=self.memory_format)
        self.name = self.device.type

    def run(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            if self.device.type == "cuda":
                x = x.pin_memory().to(self.device, non_blocking=True)
            x = x.to(self.device, dtype=self.dtype, memory_format=self.memory_format)
            y = self.module(x)
            return y.float().cpu()


def cuda_backend(module: nn.Module) -> TorchBackend:
    """fp16 and channels-last on an NVIDIA GPU (not run on hardware in this project's CI)."""
    if not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch sees no CUDA GPU")
    torch.backends.cudnn.benchmark = True
    return TorchBackend(module, "cuda", half=True, channels_last=True)
