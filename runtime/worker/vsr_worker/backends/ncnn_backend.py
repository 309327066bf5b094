"""The ``ncnn`` backend: Tencent's ncnn runtime on the original Real-ESRGAN .param/.bin files.

On CPU it is 2-2.7x faster than torch fp32 on this project's 2-core machine; with
``VSR_NCNN_VULKAN=1`` it uses a Vulkan GPU where one exists. Routes that have no ncnn file
(the RRDBNet models at x2) run the x4 file, then the same area downscale as the torch route.
Creating this backend sets torch's intra-op threads to 1 (see ``__init__``).

``workers``: how many threads will call ``run`` at once (the upscale stage runs that many
inference threads, each on its own frames). Each call then gets ``threads // workers``
threads: with one thread per call there is no OpenMP team whose every layer ends at a
barrier, where a core waits whenever the decode or encode thread takes the other one
(ncnn releases the GIL while it computes, and one Net serves concurrent extractors).
Called alone (``workers`` 1), one call uses every thread.
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
        self,
        param: Path,
        binary: Path,
        native: int,
        scale: int,
        threads: Optional[int] = None,
        vulkan: bool = False,
        workers: Optional[int] = None,
    ) -> None:
        import ncnn  # imported here: only this backend needs the ncnn wheel

        self._ncnn = ncnn
        threads = int(threads or torch.get_num_threads() or os.cpu_count() or 1)
        # Vulkan runs one command stream: concurrent extractors would only queue on it.
        self.parallel = 1 if vulkan else max(1, min(int(workers or 1), threads))
        self.net = ncnn.Net()
        self.net.opt.use_vulkan_compute = bool(vulkan)
        self.net.opt.num_threads = max(1, threads // self.parallel)
        # Concurrent callers each take one frame at a time, so none waits for a batch.
        self.frames_per_call = 1 if self.parallel > 1 else None
        # Two OpenMP pools (torch's and ncnn's) spinning against each other on a few cores
        # slow both down several times: ncnn does the heavy work, torch only light glue.
        # (ncnn's own openmp_blocktime stays at its default: 0 halves its speed.)
        torch.set_num_threads(1)
        if self.net.load_param(str(param)) != 0 or self.net.load_model(str(binary)) != 0:
            raise RuntimeError(f"ncnn could not load {param} / {binary}")
        self.native = native
        self.scale = scale

    def _one(self, chw: np.ndarray, out: np.ndarray) -> None:
        """Upscale one contiguous float CHW tile into ``out`` (a view of the result)."""
        mat = self._ncnn.Mat(chw)  # borrows chw's buffer: chw must outlive extract()
        ex = self.net.create_extractor()
        ex.input("data", mat)
        ret, result = ex.extract("output")
        if ret != 0:
            raise RuntimeError(f"ncnn extract failed ({ret})")
        np.copyto(out, np.asarray(result))  # the one copy out of ncnn's buffer
        del ex, mat

    def run(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().contiguous()
        n, c, h, w = x.shape
        y = torch.empty((n, c, h * self.native, w * self.native), dtype=torch.float32)
        for tile, out in zip(x.numpy(), y.numpy()):
            self._one(tile, out)
        if self.native != self.scale:
            y = F.avg_pool2d(y, self.native // self.scale)
        return y.clamp_(0.0, 1.0)
