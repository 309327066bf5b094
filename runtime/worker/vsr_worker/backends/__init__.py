"""Inference backends behind one interface, and the tiled runner that drives them.

``make_runner(model, scale, device)`` returns a callable taking float RGB NCHW in [0, 1]
(a batch of whole frames, on the CPU) and returning it upscaled ``scale`` times. ``device``
names the backend:

- ``cpu``: torch fp32 on CPU threads;
- ``ncnn``: the ncnn runtime on the original .param/.bin (CPU, or Vulkan with VSR_NCNN_VULKAN=1);
  it can serve ``workers`` concurrent callers, sharing the threads among them (the upscale
  stage runs one inference thread per core; ``VSR_NCNN_WORKERS`` overrides);
- ``cuda``: torch fp16, channels-last, on an NVIDIA GPU: whole frames as many as fit in its
  free memory (unless VSR_TILE/VSR_TILE_BATCH are set), one CUDA stream per inference thread;
- ``neuron``: Inf1, torch-neuron module compiled at a fixed tile shape, all NeuronCores;
- ``neuronx``: Inf2/Trn1, torch-neuronx, fixed tile shape;
- ``jit``: the neuron code path with ``torch.jit.trace`` in place of the Neuron compiler, on
  CPU (how that path is tested without Inferentia);
- ``auto``: the fastest backend this host has: cuda, neuronx, neuron, ncnn (models with ncnn
  files), cpu.

Which one runs is decided in one place, :mod:`vsr_client.devices` (the stack maps its
accelerator to a device with the same module); a device asked for by name that the host
lacks is a ``device_unavailable`` error, never a fall-back to the CPU.
``VSR_DEVICE``, when set, overrides ``device`` (e.g. ``VSR_DEVICE=ncnn vsr-worker run ...``).
Tile size, overlap and tiles per batch default per backend (``DEFAULTS``) and can be set
with VSR_TILE, VSR_TILE_OVERLAP and VSR_TILE_BATCH. The overlap defaults to the model's
receptive field (capped at 32 for the deep RRDBNet models, whose theoretical field is
hundreds of pixels), which makes tiled output equal untiled output for realesr-animevideov3.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Optional

from vsr_client.codes import ErrorCode, VsrError
from vsr_client.devices import DEVICE_ENV, DEVICES
from vsr_worker.backends.tiling import TiledRunner, plan_tiles
from vsr_worker.models.registry import ModelInfo, load_model, model_info

BACKENDS = DEVICES
MAX_DEFAULT_OVERLAP = 32
MIN_TILE_PER_OVERLAP = 4  # configured tiles keep at least half of their width
FIXED_SHAPE = ("neuron", "neuronx", "jit")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TileSettings:
    tile: int  # input pixels per tile side (0: whole frames)
    batch: int  # tiles per backend call


# Starting points, not tuned on GPU/Neuron hardware (see docs/models.md).
DEFAULTS = {
    "cpu": TileSettings(tile=512, batch=1),
    # Larger tiles waste less on overlaps: 960x540 in one 1024 tile took 8 % less CPU than in
    # 2x2 tiles of 512 (ncnn, one thread); a 1024 tile's blobs are ~270 MB per extractor.
    "ncnn": TileSettings(tile=1024, batch=1),
    "cuda": TileSettings(tile=512, batch=4),
    "neuron": TileSettings(tile=256, batch=1),  # per NeuronCore; the batch spans all cores
    "neuronx": TileSettings(tile=256, batch=2),
    "jit": TileSettings(tile=256, batch=1),
}


def _env_int(name: str) -> Optional[int]:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else None


def resolve_device(device: str, info: ModelInfo) -> str:
    """The backend that runs ``info``'s model here (``vsr_client.devices.resolve_device``)."""
    from vsr_worker.host_devices import host_device

    return host_device(device, bool(info.ncnn))


def default_overlap(info: ModelInfo, scale: int) -> int:
    return min(info.receptive_field_at(scale), MAX_DEFAULT_OVERLAP)


def model_cache() -> "os.PathLike[str]":
    from vsr_worker.models.convert import cache_dir

    return cache_dir()


def make_backend(
    model: str, scale: int, device: str, settings: TileSettings, compile_if_missing: bool = True, workers: int = 1
):
    info = model_info(model)
    if scale not in info.scales:
        raise VsrError(ErrorCode.INVALID_SCALE, f"model {model} supports scales {info.scales}, not {scale}", "scale")
    if device == "cpu":
        from vsr_worker.backends.torch_backend import TorchBackend

        return TorchBackend(load_model(model, scale, "cpu"), "cpu")
    if device == "cuda":
        from vsr_worker.backends.torch_backend import cuda_backend

        return cuda_backend(load_model(model, scale, "cpu"))
    if device == "ncnn":
        from vsr_worker.backends.ncnn_backend import NcnnBackend
        from vsr_worker.models.convert import ncnn_files

        if not info.ncnn:
            raise VsrError(ErrorCode.INVALID_MODEL, f"model {model} has no ncnn files; use device cpu", "device")
        stem, native = (info.ncnn[scale], scale) if scale in info.ncnn else (info.ncnn[4], 4)
        param, binary = ncnn_files(stem)
        return NcnnBackend(
            param,
            binary,
            native,
            scale,
            threads=_env_int("VSR_THREADS") or os.cpu_count() or 1,
            vulkan=os.environ.get("VSR_NCNN_VULKAN") == "1",
            workers=workers,
        )
    if device in ("neuron", "neuronx", "jit"):
        from pathlib import Path

        from vsr_worker.backends.neuron import NeuronBackend

        return NeuronBackend(
            load_model(model, scale, "cpu"),
            model,
            scale,
            device,
            settings.tile,
            settings.batch,
            Path(model_cache()),
            compile_if_missing=compile_if_missing,
        )
    raise VsrError(ErrorCode.INVALID_ARGUMENT, f"unknown device {device!r}", "device")


def make_runner(
    model: str,
    scale: int,
    device: str = "auto",
    tile: Optional[int] = None,
    batch: Optional[int] = None,
    overlap: Optional[int] = None,
    workers: int = 1,
) -> TiledRunner:
    """The tiled runner for ``model`` at ``scale`` on backend ``device`` (see module doc).

    ``workers``: threads that will call the runner concurrently. A backend that can share the
    cores among them (ncnn) says so in ``runner.parallel``; the others serve one at a time
    (``runner.parallel`` 1) and use every core themselves.
    """
    info = model_info(model)
    device = resolve_device(os.environ.get(DEVICE_ENV) or device, info)
    base = DEFAULTS.get(device, DEFAULTS["cpu"])
    settings = TileSettings(
        tile=tile if tile is not None else (_env_int("VSR_TILE") if _env_int("VSR_TILE") is not None else base.tile),
        batch=max(1, batch or _env_int("VSR_TILE_BATCH") or base.batch),
    )
    if overlap is None:
        overlap = _env_int("VSR_TILE_OVERLAP")
    if overlap is None:
        overlap = default_overlap(info, scale)
    if tile is None and device not in FIXED_SHAPE and 0 < settings.tile < MIN_TILE_PER_OVERLAP * overlap:
        # A tile barely larger than its margins multiplies the work (a 40 px tile with a 19 px
        # overlap keeps 2 px of 40): raise a configured tile rather than crawl.
        raised = MIN_TILE_PER_OVERLAP * overlap
        log.warning("tile %d too small for overlap %d: using %d", settings.tile, overlap, raised)
        settings = TileSettings(raised, settings.batch)
    # Neuron artefacts are compiled at image build (`vsr-worker models --compile`), never per
    # segment: a missing one is an error unless VSR_NEURON_COMPILE=1 allows compiling it here.
    compile_here = device == "jit" or os.environ.get("VSR_NEURON_COMPILE") == "1"
    workers = _env_int("VSR_NCNN_WORKERS") or workers
    backend = make_backend(model, scale, device, settings, compile_if_missing=compile_here, workers=workers)
    # The GPU plans tiles from its free memory unless a tile or batch was configured.
    auto = tile is None and batch is None and _env_int("VSR_TILE") is None and _env_int("VSR_TILE_BATCH") is None
    return TiledRunner(backend, scale, settings.tile, overlap, settings.batch, pre_pad=info.pre_pad, auto_plan=auto)


__all__ = ["BACKENDS", "DEFAULTS", "TileSettings", "TiledRunner", "make_backend", "make_runner", "plan_tiles"]
