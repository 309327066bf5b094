"""The upscale stage runs the learned model through the tiled runner (a tiny real video)."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from vsr_worker.backends import make_runner
from vsr_worker.cli import main


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("VSR_MODEL_CACHE", str(tmp_path_factory.getbasetemp() / "model-cache"))


def _video(path, w=96, h=64, n=3):
    yy, xx = np.mgrid[0:h, 0:w]
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25, options={"crf": "10"})
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        for i in range(n):
            img = np.stack([xx * 2 + i * 9, yy * 3, 128 + 100 * np.sin((xx + yy) / 3.0)], -1)
            for p in vs.encode(av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24")):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)


def _rgb(path):
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24").astype(np.float32) for f in c.decode(video=0)]


def _psnr(a, b):
    return 10 * np.log10(255.0**2 / float(np.mean((a - b) ** 2)))


def test_run_with_realesr_animevideov3(tmp_path, monkeypatch):
    src, dst = tmp_path / "in.mp4", tmp_path / "out.mp4"
    _video(src)
    monkeypatch.setenv("VSR_TILE", "40")  # raised to 4 x overlap = 76  # several tiles per frame through the real stage
    rc = main(["run", str(src), "-o", str(dst), "--model", "realesr-animevideov3", "--scale", "2", "-j", "1", "-q"])
    assert rc == 0
    inp, out = _rgb(src), _rgb(dst)
    assert len(out) == len(inp) == 3 and out[0].shape == (128, 192, 3)
    runner = make_runner("realesr-animevideov3", 2, "cpu", tile=0)
    with torch.inference_mode():
        ref = runner(torch.from_numpy(np.stack(inp)).permute(0, 3, 1, 2) / 255).permute(0, 2, 3, 1).numpy() * 255
    bicubic = (
        torch.nn.functional.interpolate(
            torch.from_numpy(np.stack(inp)).permute(0, 3, 1, 2), scale_factor=2, mode="bicubic"
        )
        .permute(0, 2, 3, 1)
        .clamp(0, 255)
        .numpy()
    )
    got = np.stack(out)
    # the encoded result is the model's output (up to YUV 4:2:0 + x264 loss), not bicubic's
    assert _psnr(got, ref) > 27.0
    assert _psnr(got, ref) > _psnr(got, bicubic) + 3.0
