"""The model registry is data: name -> architecture, scales, source, licence, loader."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Tuple

import torch

from vsr_client.contract import ErrorCode, VsrError
from vsr_worker.models.bicubic import Bicubic


@dataclass(frozen=True)
class ModelInfo:
    name: str
    architecture: str
    scales: Tuple[int, ...]
    receptive_field: int  # input pixels each side that influence one output pixel
    licence: str
    source: str
    build: Callable[[int], torch.nn.Module]


MODELS: Dict[str, ModelInfo] = {
    "bicubic": ModelInfo(
        name="bicubic",
        architecture="interpolation",
        scales=(2, 4),
        receptive_field=2,
        licence="n/a",
        source="torch.nn.functional.interpolate(mode='bicubic')",
        build=Bicubic,
    ),
}


def available() -> list:
    return sorted(MODELS)


def model_info(name: str) -> ModelInfo:
    try:
        return MODELS[name]
    except KeyError:
        raise VsrError(
            ErrorCode.INVALID_MODEL, f"unknown model {name!r}; available: {', '.join(available())}", "model"
        ) from None


def load_model(name: str, scale: int, device: str = "cpu") -> torch.nn.Module:
    info = model_info(name)
    if scale not in info.scales:
        raise VsrError(ErrorCode.INVALID_SCALE, f"model {name} supports scales {info.scales}, not {scale}", "scale")
    return info.build(scale).eval().to(device)
