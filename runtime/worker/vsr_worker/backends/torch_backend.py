"""The torch backends: ``cpu`` (fp32, intra-op threads) and ``cuda`` (NVIDIA GPUs).

The cuda backend is built to keep a GPU busy. It was NOT run on a GPU in this project (none
was available): its logic runs on the CPU in the tests, where only the transfer object
(:class:`_CudaTransfer` vs :class:`_HostTransfer`) differs, and ``bench/bench_gpu.py``
measures it on a GPU host.

- fp16 weights and activations in channels-last memory format (tensor cores), cuDNN autotuning;
- whole frames, several per call, as many as fit in a share of the GPU's free memory (the
  bytes one input pixel costs are measured once with a small trial batch); tiles only for
  frames too large for that (``plan_gpu_tiles``);
- each calling thread has its own CUDA stream, and frames travel through pinned (page-locked)
  host memory with non-blocking copies: with two callers (``parallel``), one's copies and
  colour conversion overlap the other's compute;
- ``VSR_TORCH_COMPILE=<mode>`` compiles the module with ``torch.compile`` (``reduce-overhead``
  uses CUDA graphs). Off by default: it costs tens of seconds per process and input shape, and
  its gain on this network is measured by the GPU bench, not assumed.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from typing import Any, ContextManager, Optional, Tuple

import torch
from torch import nn

# Share of the GPU's free memory one call may use (two callers run at once).
GPU_MEMORY_SHARE = 0.25
CUDA_CALLERS = 2


class TorchBackend:
    fixed_tile = None
    fixed_batch = None

    def __init__(self, module: nn.Module, device: str = "cpu", half: bool = False, channels_last: bool = False) -> None:
        self.device = torch.device(device)
        self.dtype = torch.float16 if half else torch.float32
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.module = prepare_module(module, self.device, self.dtype, channels_last)
        self.name = self.device.type

    def run(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            x = x.to(self.device, dtype=self.dtype, memory_format=self.memory_format)
            return self.module(x).float().cpu()


def prepare_module(module: nn.Module, device: torch.device, dtype: torch.dtype, channels_last: bool) -> nn.Module:
    """Eval mode, no gradients, weights in ``dtype`` on ``device``; channels-last if asked."""
    module = module.eval().requires_grad_(False)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return module.to(device=device, dtype=dtype, memory_format=fmt)


def plan_gpu_tiles(
    frames: int, height: int, width: int, bytes_per_pixel: float, budget: float, overlap: int
) -> Tuple[int, int]:
    """(tile, tiles per call) for ``frames`` frames of ``height`` x ``width`` input pixels.

    Whole frames (tile 0), as many per call as fit in ``budget`` bytes; a frame too large for
    the budget is cut into the largest square tiles that fit (a multiple of 16, at least
    four times the ``overlap``), as many per call as fit.
    """
    per_frame = height * width * bytes_per_pixel
    if per_frame <= budget:
        return 0, max(1, min(frames, int(budget // per_frame)))
    side = int(math.sqrt(budget / bytes_per_pixel)) // 16 * 16
    side = max(side, 4 * overlap, 64)
    return side, max(1, int(budget // (side * side * bytes_per_pixel)))


class _HostTransfer:
    """Frames stay where they are: the CPU path of :class:`CudaBackend` (tests)."""

    def stream(self) -> ContextManager[Any]:
        return contextlib.nullcontext()

    def to_device(self, x: torch.Tensor, device: torch.device) -> torch.Tensor:
        return x.to(device)

    def to_host(self, y: torch.Tensor) -> torch.Tensor:
        return y.cpu()


class _CudaTransfer:
    """One CUDA stream per calling thread; copies through pinned host memory, non-blocking."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._local = threading.local()

    def stream(self) -> ContextManager[Any]:
        stream = getattr(self._local, "stream", None)
        if stream is None:
            stream = self._local.stream = torch.cuda.Stream(self.device)
        return torch.cuda.stream(stream)

    def to_device(self, x: torch.Tensor, device: torch.device) -> torch.Tensor:
        # Pinned memory comes from torch's caching host allocator: cheap after the first call.
        pinned = torch.empty(x.shape, dtype=x.dtype, pin_memory=True)
        pinned.copy_(x)
        return pinned.to(device, non_blocking=True)

    def to_host(self, y: torch.Tensor) -> torch.Tensor:
        out = torch.empty(y.shape, dtype=y.dtype, pin_memory=True)
        out.copy_(y, non_blocking=True)
        torch.cuda.current_stream(self.device).synchronize()  # this thread's stream only
        return out


class CudaBackend:
    """fp16, channels-last, frames planned from free GPU memory, one CUDA stream per caller."""

    fixed_tile = None
    fixed_batch = None
    name = "cuda"

    def __init__(
        self,
        module: nn.Module,
        device: str = "cuda",
        dtype: torch.dtype = torch.float16,
        parallel: int = CUDA_CALLERS,
        compile_mode: Optional[str] = None,
        bytes_per_pixel: Optional[float] = None,
        free_memory: Optional[float] = None,
    ) -> None:
        self.device = torch.device(device)
        self.dtype = dtype
        self.parallel = max(1, int(parallel))
        self.module = prepare_module(module, self.device, dtype, channels_last=True)
        if compile_mode:
            self.module = torch.compile(self.module, mode=compile_mode, dynamic=False)
        cuda = self.device.type == "cuda"
        if cuda:  # the weights' copy ran on the default stream; callers use their own streams
            torch.cuda.synchronize(self.device)
        self.transfer = _CudaTransfer(self.device) if cuda else _HostTransfer()
        if free_memory is None:
            free_memory = float(torch.cuda.mem_get_info(self.device)[0]) if cuda else 8 * 2**30
        self.budget = free_memory * GPU_MEMORY_SHARE
        self.bytes_per_pixel = bytes_per_pixel or (self._measure_bytes_per_pixel() if cuda else 2048.0)

    def _measure_bytes_per_pixel(self, side: int = 128) -> float:
        """GPU memory one input pixel costs in a forward pass (activations, output, workspace)."""
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        before = torch.cuda.memory_allocated(self.device)
        with torch.inference_mode():
            x = torch.zeros(2, 3, side, side, device=self.device, dtype=self.dtype)
            self.module(x.contiguous(memory_format=torch.channels_last))
        torch.cuda.synchronize(self.device)
        peak = torch.cuda.max_memory_allocated(self.device) - before
        return max(1.0, 1.25 * peak / (2 * side * side))  # 25 % headroom for allocator slack

    def plan(self, frames: int, height: int, width: int, overlap: int) -> Tuple[int, int]:
        """(tile, tiles per call) for the tiled runner: see :func:`plan_gpu_tiles`."""
        return plan_gpu_tiles(frames, height, width, self.bytes_per_pixel, self.budget, overlap)

    def run(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), self.transfer.stream():
            xd = self.transfer.to_device(x.float().contiguous(), self.device)
            xd = xd.to(dtype=self.dtype).contiguous(memory_format=torch.channels_last)
            y = self.module(xd).float().contiguous()  # fp32, NCHW on the GPU: the host converts nothing
            return self.transfer.to_host(y)


def cuda_backend(module: nn.Module) -> CudaBackend:
    """The cuda backend on this host's GPU (not run on hardware in this project's CI)."""
    if not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch sees no CUDA GPU")
    torch.backends.cudnn.benchmark = True
    compile_mode = os.environ.get("VSR_TORCH_COMPILE") or None
    return CudaBackend(module, "cuda", torch.float16, compile_mode=compile_mode)
