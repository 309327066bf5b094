"""The upscale stage's inference threads: frames come out in order, whoever finishes first."""

from __future__ import annotations

import random
import threading
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests import oracle
from tests.pipeline_runner import run_inline
from vsr_worker.backends import make_runner
from vsr_worker.stages import upscale


class _ShuffledRunner:
    """Nearest-neighbour x2 that takes a random time per call, from several threads at once."""

    scale = 2
    parallel = 3
    frames_per_call = 1

    def __init__(self) -> None:
        self.threads: set[str] = set()
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with self._lock:
            self.threads.add(threading.current_thread().name)
            self.calls += 1
        time.sleep(random.uniform(0.0, 0.02))  # later frames often finish before earlier ones
        return F.interpolate(x, scale_factor=2, mode="nearest")


def test_frames_leave_the_inference_threads_in_source_order(tmp_path, make_case, monkeypatch):
    runner = _ShuffledRunner()
    monkeypatch.setattr(upscale, "_RUNNERS", {})
    monkeypatch.setattr(upscale, "make_runner", lambda *args, **kwargs: runner)
    src = make_case("cfr25")
    result = run_inline(src, tmp_path / "out.mp4", tmp_path / "job", segment_time=2.0)
    src_info, out_info = oracle.streams(src)[0], oracle.streams(result["output"])[0]
    src_codes = oracle.frame_codes(oracle.gray_frames(src, src_info["width"], src_info["height"]))
    out_codes = oracle.frame_codes(oracle.gray_frames(result["output"], out_info["width"], out_info["height"]))
    assert len(runner.threads) == 3  # the calls really ran side by side
    assert runner.calls == len(src_codes)  # one frame per call, as the runner asked
    # Codes step by >= 20 levels from frame to frame: a reordered frame is far outside 3.
    assert len(out_codes) == len(src_codes)
    assert max(abs(a - b) for a, b in zip(out_codes, src_codes)) <= 3


def test_ncnn_shared_by_concurrent_callers_gives_the_single_caller_result():
    frames = torch.rand(4, 3, 40, 56)
    alone = make_runner("realesr-animevideov3", 4, "ncnn", tile=0)
    shared = make_runner("realesr-animevideov3", 4, "ncnn", tile=0, workers=2)
    assert (alone.parallel, shared.parallel, shared.frames_per_call) == (1, 2, 1)
    assert shared.backend.net.opt.num_threads == max(1, torch.get_num_threads() // 2)
    with torch.inference_mode():
        expected = alone(frames)
        results: dict[int, torch.Tensor] = {}

        def work(i: int) -> None:
            results[i] = shared(frames[i : i + 1])

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    got = torch.cat([results[i] for i in range(4)])
    assert float((got - expected).abs().max()) < 1e-5


@pytest.mark.parametrize("high_depth", [False, True])
@pytest.mark.parametrize("consume", [False, True])
def test_tensor_to_frame_writes_each_channel_into_its_plane(high_depth, consume):
    """Planar RGB out (G, B, R planes): each tensor channel, scaled and rounded, in its plane."""
    import av

    from vsr_worker.media.frames import ColorSpec, tensor_to_frame

    peak = 65535 if high_depth else 255
    spec = ColorSpec.of(av.VideoFrame(30, 18, "yuv420p10le" if high_depth else "yuv420p"))
    tensor = torch.rand(3, 18, 30)
    expected = torch.round(tensor * peak).long()
    original = tensor.clone()
    frame = tensor_to_frame(tensor, spec, "gbrp16le" if high_depth else "gbrp", consume=consume)
    dtype = np.uint16 if high_depth else np.uint8
    planes = [np.frombuffer(p, dtype).reshape(p.height, -1)[:, :30] for p in frame.planes]
    got = torch.from_numpy(np.stack([planes[2], planes[0], planes[1]]).astype(np.int64))  # R, G, B
    assert torch.equal(got, expected)
    assert torch.equal(tensor, original) != consume  # consume scales in place; otherwise untouched


def test_a_worker_keeps_torch_on_one_thread_for_every_segment_it_upscales(tmp_path, make_case, monkeypatch):
    """ncnn does the heavy work; torch's own threads would spin against it (docs/models.md)."""
    seen: list[int] = []
    real = upscale.make_runner

    def spy(*args, **kwargs):
        runner = real(*args, **kwargs)
        original = runner.__call__

        class Spy:
            parallel, frames_per_call = runner.parallel, runner.frames_per_call

            def __call__(self, x):
                seen.append(torch.get_num_threads())
                return original(x)

        return Spy()

    monkeypatch.setattr(upscale, "_RUNNERS", {})
    monkeypatch.setattr(upscale, "make_runner", spy)
    monkeypatch.setenv("VSR_DEVICE", "ncnn")
    monkeypatch.setenv("VSR_THREADS", "2")
    monkeypatch.setenv("VSR_TILE", "0")
    run_inline(make_case("cfr25"), tmp_path / "out.mp4", tmp_path / "job", model="realesr-animevideov3")
    assert len(seen) == 100 and set(seen) == {1}  # four segments, one process, one model load
