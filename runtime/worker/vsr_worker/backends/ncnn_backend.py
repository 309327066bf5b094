"""The ``ncnn`` backend: Tencent's ncnn runtime on the original Real-ESRGAN .param/.bin files.

On CPU it is 1.3-3x faster than torch fp32 on this project's 2-core machine; with
``VSR_NCNN_VULKAN=1`` it uses a Vulkan GPU where one exists. Routes that have no ncnn file
(the RRDBNet models at x2) run the x4 file, then the same area downscale as the torch route.
Creating this backend sets torch's intra-op threads to 1 (see ``__init__``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F


class NcnnBackend:
    fixed_tile = None
    fixed_batch = None
    name = "ncnn"

    def __init__(
        self, param: Path, binary: Path, native: int, scale: int, threads: Optional[int] = None, vulkan: bool = False
    ) -> None:
        import ncnn  # imported here: only this backend needs the ncnn wheel

        self._ncnn = ncnn
        self.net = ncnn.Net()
        self.net.opt.use_vulkan_compute = bool(vulkan)
        self.net.opt.num_threads = int(threads or torch.get_num_threads() or os.cpu_count() or 1)
        # Two OpenMP pools (torch's and ncnn's) spinning against each other on a few cores
        # slow both down several times: ncnn does the heavy work, torch only light glue.
        # (ncnn's own openmp_blocktime stays at its default: 0 halves its speed.)
        torch.set_num_threads(1)
        if self.net.load_param(str(param)) != 0 or self.net.load_model(str(binary)) != 0:
            raise RuntimeError(f"ncnn could not load {param} / {binary}")
        self.native = native
        self.scale = scale

    def _one(self, chw: torch.Tensor) -> np.ndarray:
        arr = np.ascontiguousarray(chw.numpy(), dtype=np.float32)
        mat = self._ncnn.Mat(arr)  # borrows arr's buffer: arr must outlive extract()
        ex = self.net.create_extractor()
        ex.input("data", mat)
        ret, out = ex.extract("output")
        if ret != 0:
            raise RuntimeError(f"ncnn extract failed ({ret})")
        result = np.array(out, copy=True)
        del ex, mat, arr
        return result

    def run(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.from_numpy(np.stack([self._one(t) for t in x.float().contiguous()]))
        if self.native != self.scale:
            y = F.avg_pool2d(y, self.native // self.scale)
        return y.clamp_(0.0, 1.0)
