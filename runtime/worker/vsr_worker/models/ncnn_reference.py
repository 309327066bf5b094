"""The ncnn runtime on the wheel's original .param/.bin: the reference the PyTorch conversion
is measured against (tests and bench/bench_models.py)."""

from __future__ import annotations

import numpy as np

from vsr_worker.models.convert import ncnn_files


def reference_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """An 8-bit RGB test image: smooth gradients plus texture, CHW uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([xx / w, yy / h, (xx + yy) / (h + w)]) * 200
    return np.clip(base + rng.normal(0, 25, (3, h, w)), 0, 255).astype(np.uint8)


def run_ncnn(stem: str, chw: np.ndarray, threads: int = 2) -> np.ndarray:
    """Float RGB CHW in [0, 1] through the ncnn CPU runtime; returns its ``output`` blob."""
    import ncnn

    param, binary = ncnn_files(stem)
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = threads
    if net.load_param(str(param)) != 0 or net.load_model(str(binary)) != 0:
        raise RuntimeError(f"ncnn could not load {stem}")
    arr = np.ascontiguousarray(chw, dtype=np.float32)  # the Mat borrows it: keep it alive until extract
    mat = ncnn.Mat(arr)
    ex = net.create_extractor()
    ex.input("data", mat)
    ret, out = ex.extract("output")
    if ret != 0:
        raise RuntimeError(f"ncnn extract failed for {stem}: {ret}")
    return np.array(out, copy=True)
