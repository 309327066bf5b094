"""Tiling with overlap, and the backends behind the tiled runner."""

from __future__ import annotations

import pytest
import torch

from vsr_worker.backends import DEFAULTS, TileSettings, make_backend, make_runner
from vsr_worker.backends.neuron import NeuronBackend, compiled_path, neuron_cores
from vsr_worker.backends.tiling import TiledRunner, pad_to, plan_axis, plan_tiles
from vsr_worker.backends.torch_backend import TorchBackend, cuda_backend
from vsr_worker.models import MODELS, load_model

TOL = 1 / 255


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("VSR_MODEL_CACHE", str(tmp_path_factory.getbasetemp() / "model-cache"))


@pytest.fixture(scope="module")
def frames():
    torch.manual_seed(0)
    return torch.rand(2, 3, 37, 52)


@pytest.mark.parametrize("fixed", [False, True])
@pytest.mark.parametrize("length", [1, 5, 40, 41, 77, 128, 300, 1001])
@pytest.mark.parametrize(("tile", "overlap"), [(40, 18), (64, 8), (33, 0), (256, 32)])
def test_plan_covers_every_pixel_once_with_valid_context(length, tile, overlap, fixed):
    spans = plan_axis(length, tile, overlap, fixed)
    sizes = {s.size for s in spans}
    assert len(sizes) == 1 and max(sizes) <= (tile if length > tile else length)
    if fixed and length > tile:
        assert sizes == {tile}
    covered = []
    for s in spans:
        assert s.start >= 0 and s.start + s.size <= length
        assert s.start <= s.keep_lo < s.keep_hi <= s.start + s.size
        if s.keep_lo > 0:  # an edge shared with a neighbour: at least `overlap` of context
            assert s.keep_lo - s.start >= overlap
        if s.keep_hi < length:
            assert s.start + s.size - s.keep_hi >= overlap
        covered.append((s.keep_lo, s.keep_hi))
    pos = 0
    for lo, hi in covered:  # contiguous, in order, from 0 to length
        assert lo <= pos < hi or (lo == pos == 0 == hi)
        pos = hi
    assert pos == length


def test_plan_rejects_tiles_smaller_than_twice_the_overlap():
    with pytest.raises(ValueError):
        plan_axis(100, 36, 18)
    assert len(plan_tiles(540, 960, 512, 18)) == 4  # a 960x540 frame: 2 x 2 tiles of < 512


@pytest.mark.parametrize("scale", [2, 4])
def test_tiled_equals_untiled_when_overlap_covers_the_receptive_field(frames, scale):
    rf = MODELS["realesr-animevideov3"].receptive_field_at(scale)
    whole = make_runner("realesr-animevideov3", scale, "cpu", tile=0)(frames)
    tiled_runner = make_runner("realesr-animevideov3", scale, "cpu", tile=50, overlap=rf, batch=3)
    assert len(plan_tiles(37 + 20, 52 + 20, tiled_runner.tile, rf)) == 6
    tiled = tiled_runner(frames)
    assert tiled.shape == whole.shape == (2, 3, 37 * scale, 52 * scale)
    assert float((tiled - whole).abs().max()) <= TOL
    # the runner with its default settings is the untiled model on the reflect-padded frames
    ref = load_model("realesr-animevideov3", scale)(torch.nn.functional.pad(frames, (10,) * 4, mode="reflect"))
    assert float((whole - ref[:, :, 10 * scale : -10 * scale, 10 * scale : -10 * scale]).abs().max()) <= 1e-5


def test_too_small_an_overlap_shows_seams(frames):
    whole = make_runner("realesr-animevideov3", 4, "cpu", tile=0)(frames[:1])
    seams = make_runner("realesr-animevideov3", 4, "cpu", tile=40, overlap=2)(frames[:1])
    assert float((seams - whole).abs().max()) > 10 * TOL


def test_batching_does_not_change_the_result(frames):
    one = make_runner("realesr-animevideov3", 2, "cpu", tile=50, overlap=19, batch=1)(frames[:1])
    five = make_runner("realesr-animevideov3", 2, "cpu", tile=50, overlap=19, batch=5)(frames[:1])
    assert float((one - five).abs().max()) <= 1e-5


@pytest.fixture()
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("_restore_threads")
@pytest.mark.parametrize("scale", [2, 4])
def test_ncnn_backend_matches_the_cpu_backend(scale):
    pytest.importorskip("ncnn")
    frames = torch.rand(1, 3, 20, 26)
    cpu = make_runner("realesr-animevideov3", scale, "cpu", tile=0)(frames)
    nc = make_runner("realesr-animevideov3", scale, "ncnn", tile=0)(frames)
    assert nc.shape == cpu.shape
    assert float((nc - cpu).abs().max()) <= TOL


@pytest.mark.usefixtures("_restore_threads")
def test_ncnn_backend_x2_route_for_a_model_without_an_x2_file():
    pytest.importorskip("ncnn")
    x = torch.rand(1, 3, 12, 12)
    cpu = make_runner("realesrgan-x4plus-anime", 2, "cpu", tile=0)(x)
    nc = make_runner("realesrgan-x4plus-anime", 2, "ncnn", tile=0)(x)
    assert nc.shape == (1, 3, 24, 24)
    assert float((nc - cpu).abs().max()) <= TOL


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.* is deprecated in torch 2.x
def test_fixed_shape_path_traced_with_jit(frames, tmp_path, monkeypatch):
    """The neuron code path (fixed tile, fixed batch, padding, compile-once cache) via torch.jit.trace."""
    monkeypatch.setenv("VSR_MODEL_CACHE", str(tmp_path))
    frames = frames[:1]
    whole = make_runner("realesr-animevideov3", 4, "cpu", tile=0)(frames)
    runner = make_runner("realesr-animevideov3", 4, "jit", tile=44, overlap=18, batch=2)
    assert len(plan_tiles(57, 72, 44, 18, fixed=True)) == 3 * 5
    backend = runner.backend
    assert (backend.fixed_tile, backend.fixed_batch, backend.compiled_now) == (44, 2, True)
    assert backend.path.is_file() and backend.path.parent == tmp_path / "compiled"
    calls = []
    run = backend.run
    backend.run = lambda x: calls.append(tuple(x.shape)) or run(x)
    out = runner(frames)
    assert set(calls) == {(2, 3, 44, 44)}  # every call has the compiled shape, the last batch padded
    assert float((out - whole).abs().max()) <= TOL
    # small frames (smaller than one tile) are padded to the tile, and cropped back
    small = torch.rand(1, 3, 9, 14)
    assert runner(small).shape == (1, 3, 36, 56)
    # a second worker loads the compiled artefact instead of compiling again
    again = make_backend("realesr-animevideov3", 4, "jit", TileSettings(44, 2), compile_if_missing=False)
    assert again.compiled_now is False
    with pytest.raises(ValueError):
        again.run(torch.zeros(1, 3, 44, 44))
    with pytest.raises(RuntimeError, match="models --compile"):
        make_backend("realesr-animevideov3", 2, "jit", TileSettings(44, 2), compile_if_missing=False)


def test_neuron_planning_helpers(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURON_RT_NUM_CORES", "4")
    assert neuron_cores() == 4
    p = compiled_path(tmp_path, "realesr-animevideov3", 2, "neuron", 256, 1)
    assert p.name.startswith("realesr-animevideov3-x2-neuron-t256-b1-torch")
    assert DEFAULTS["neuron"].tile > 2 * 19
    with pytest.raises(ImportError):  # torch-neuron is not installed here: the real compiler cannot run
        NeuronBackend(torch.nn.Identity(), "m", 4, "neuron", 64, 1, tmp_path)


def test_pad_to_and_cuda_without_gpu():
    x = torch.rand(1, 3, 5, 7)
    y = pad_to(x, 8, 8)
    assert y.shape == (1, 3, 8, 8) and torch.equal(y[..., :5, :7], x) and torch.equal(y[..., 7, :7], x[..., 4, :])
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            cuda_backend(torch.nn.Identity())


def test_channels_last_torch_path_matches(frames):
    model = load_model("realesr-animevideov3", 2)
    plain = TiledRunner(TorchBackend(model), 2, 0, 0)(frames)
    cl = TiledRunner(TorchBackend(load_model("realesr-animevideov3", 2), channels_last=True), 2, 0, 0)(frames)
    assert float((plain - cl).abs().max()) <= 1e-5


def test_configured_tiles_too_small_for_the_overlap_are_raised(monkeypatch):
    monkeypatch.setenv("VSR_TILE", "40")
    assert make_runner("realesr-animevideov3", 2, "cpu").tile == 4 * 19
    monkeypatch.setenv("VSR_TILE", "0")
    assert make_runner("realesr-animevideov3", 2, "cpu").tile == 0
    assert make_runner("realesr-animevideov3", 2, "cpu", tile=50).tile == 50  # explicit: as asked


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_neuron_workers_load_compiled_artefacts_and_never_compile(tmp_path, monkeypatch):
    monkeypatch.setenv("VSR_MODEL_CACHE", str(tmp_path))
    monkeypatch.delenv("VSR_NEURON_COMPILE", raising=False)
    # As on an Inf1 host: the device is there (the probe says so), the compiled model is not.
    monkeypatch.setattr("vsr_worker.host_devices.missing", lambda device: None)
    with pytest.raises(RuntimeError, match="models --compile neuron"):
        make_runner("realesr-animevideov3", 2, "neuron")


def test_neuronx_compile_marks_the_trace_lazy_before_saving(tmp_path, monkeypatch):
    """torch_neuronx.lazy_load must run right after trace: the image build has no NeuronCore."""
    import sys
    import types

    calls: list[str] = []
    fake = types.ModuleType("torch_neuronx")

    def trace(module, example):
        calls.append("trace")
        return torch.jit.trace(module, example, check_trace=False)

    def lazy_load(traced, enable_lazy_load=True):
        calls.append("lazy_load")

    fake.trace, fake.lazy_load = trace, lazy_load
    monkeypatch.setitem(sys.modules, "torch_neuronx", fake)
    real_save = torch.jit.save
    monkeypatch.setattr(torch.jit, "save", lambda m, f: (calls.append("save"), real_save(m, f))[1])
    backend = NeuronBackend(torch.nn.Identity(), "m", 4, "neuronx", 16, 1, tmp_path)
    assert calls == ["trace", "lazy_load", "save"]
    assert backend.path.is_file()
