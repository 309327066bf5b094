"""The cuda backend's logic, run on the CPU (no GPU here): fp16 channels-last module, memory-
planned batches of whole frames, tiles when a frame does not fit, two callers at once."""

from __future__ import annotations

import math
import threading

import pytest
import torch

from vsr_worker.backends import make_runner
from vsr_worker.backends.tiling import TiledRunner
from vsr_worker.backends.torch_backend import CudaBackend, TorchBackend, plan_gpu_tiles, prepare_module
from vsr_worker.models import load_model


def test_prepare_module_makes_every_conv_weight_half_and_channels_last():
    module = prepare_module(load_model("realesr-animevideov3", 4), torch.device("cpu"), torch.float16, True)
    weights = [p for p in module.parameters() if p.dim() == 4]
    assert weights and all(p.dtype == torch.float16 for p in module.parameters())
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)
    assert not any(p.is_contiguous() for p in weights if p.shape[1] > 1 and p.shape[-1] > 1)
    assert not module.training and not any(p.requires_grad for p in module.parameters())


@pytest.mark.parametrize(
    ("frames", "height", "width", "budget_frames"),
    [(4, 540, 960, 10.0), (4, 540, 960, 2.5), (8, 1080, 1920, 1.0), (1, 64, 64, 100.0)],
)
def test_whole_frames_as_many_per_call_as_fit(frames, height, width, budget_frames):
    bpp = 3000.0
    budget = budget_frames * height * width * bpp
    assert plan_gpu_tiles(frames, height, width, bpp, budget, 19) == (0, min(frames, math.floor(budget_frames)))


def test_a_frame_larger_than_the_budget_gets_the_largest_tile_that_fits():
    bpp, budget, overlap = 3000.0, 0.3 * 2160 * 3840 * 3000.0, 19
    tile, per_call = plan_gpu_tiles(2, 2160, 3840, bpp, budget, overlap)
    assert tile % 16 == 0 and tile >= 4 * overlap
    assert per_call * tile * tile * bpp <= budget  # what is sent at once fits
    assert (tile + 16) ** 2 * bpp > budget  # and no larger multiple of 16 would


def test_cuda_code_path_in_fp16_matches_fp32_on_the_cpu():
    frames = torch.rand(3, 3, 30, 44)
    reference = TiledRunner(TorchBackend(load_model("realesr-animevideov3", 2)), 2, 0, 0)(frames)
    backend = CudaBackend(load_model("realesr-animevideov3", 2), "cpu", torch.float16)
    got = TiledRunner(backend, 2, 0, 0)(frames)
    assert got.dtype == torch.float32 and got.shape == reference.shape
    assert float((got - reference).abs().max()) < 0.01  # fp16 rounding, not a different result


class _PlanSpy(CudaBackend):
    """Records the batch sizes the runner sends when the plan allows ``fit`` frames per call."""

    def __init__(self, fit: int, height: int, width: int) -> None:
        super().__init__(load_model("realesr-animevideov3", 4), "cpu", torch.float32, bytes_per_pixel=1000.0)
        self.budget = fit * height * width * 1000.0
        self.sizes: list[tuple] = []

    def run(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(tuple(x.shape))
        return super().run(x)


def test_runner_sends_whole_frames_in_planned_groups_and_the_result_is_unchanged():
    frames = torch.rand(5, 3, 20, 28)
    spy = _PlanSpy(fit=2, height=20 + 2 * 10, width=28 + 2 * 10)  # frames are reflect-padded by 10
    got = TiledRunner(spy, 4, 0, 18, pre_pad=10, auto_plan=True)(frames)
    assert spy.sizes == [(2, 3, 40, 48), (2, 3, 40, 48), (1, 3, 40, 48)]
    ref = TiledRunner(TorchBackend(load_model("realesr-animevideov3", 4)), 4, 0, 18, pre_pad=10)(frames)
    assert float((got - ref).abs().max()) < 1e-5


def test_runner_tiles_a_frame_that_does_not_fit():
    frames = torch.rand(1, 3, 100, 140)
    spy = _PlanSpy(fit=1, height=90, width=90)  # room for one 90x90 input: tiles of at most 80 px
    got = TiledRunner(spy, 4, 0, 18, pre_pad=10, auto_plan=True)(frames)
    assert len(spy.sizes) > 1 and all(s[0] == 1 and s[2] <= 80 and s[3] <= 80 for s in spy.sizes)
    ref = TiledRunner(TorchBackend(load_model("realesr-animevideov3", 4)), 4, 0, 18, pre_pad=10)(frames)
    assert float((got - ref).abs().max()) < 1e-4  # overlap >= receptive field: seamless


def test_two_callers_at_once_get_their_own_results():
    backend = CudaBackend(load_model("realesr-animevideov3", 2), "cpu", torch.float32, bytes_per_pixel=1000.0)
    runner = TiledRunner(backend, 2, 0, 19, pre_pad=10, auto_plan=True)
    assert runner.parallel == 2
    inputs = [torch.rand(1, 3, 24, 32) for _ in range(4)]
    expected = [runner(x) for x in inputs]
    got: dict[int, torch.Tensor] = {}
    threads = [threading.Thread(target=lambda i=i: got.__setitem__(i, runner(inputs[i]))) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(torch.equal(got[i], expected[i]) for i in range(4))


def test_make_runner_plans_from_memory_unless_a_tile_is_configured(monkeypatch):
    monkeypatch.setattr("vsr_worker.host_devices.missing", lambda device: None)  # as on a GPU host
    monkeypatch.setattr(
        "vsr_worker.backends.torch_backend.cuda_backend",
        lambda module: CudaBackend(module, "cpu", torch.float32, bytes_per_pixel=1000.0, free_memory=2**30),
    )
    monkeypatch.delenv("VSR_TILE", raising=False)
    monkeypatch.delenv("VSR_TILE_BATCH", raising=False)
    assert make_runner("realesr-animevideov3", 2, "cuda").auto_plan
    assert not make_runner("realesr-animevideov3", 2, "cuda", tile=256).auto_plan
    monkeypatch.setenv("VSR_TILE", "256")
    assert not make_runner("realesr-animevideov3", 2, "cuda").auto_plan
