"""Decoded frames to model tensors and back, with the right YUV matrix and range.

swscale assumes BT.601 whenever a frame does not say, which tints HD video; we follow the
frame's tags and, where they are missing, the usual convention (BT.709 from 720 lines up).
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np
import torch
from av.video.reformatter import ColorRange, Colorspace

# AVColorSpace (as tagged on frames) -> swscale's matrix constants.
_MATRIX = {
    1: Colorspace.ITU709,
    4: Colorspace.FCC,
    5: Colorspace.ITU601,
    6: Colorspace.ITU601,
    7: Colorspace.SMPTE240M,
    9: Colorspace.BT2020,
    10: Colorspace.BT2020,
}
_FULL_RANGE_FORMATS = ("yuvj420p", "yuvj422p", "yuvj444p", "yuvj440p", "yuvj411p")


@dataclass(frozen=True)
class ColorSpec:
    """How a stream's YUV maps to RGB, and what the encoder should tag."""

    matrix: Colorspace
    range: ColorRange
    colorspace_tag: int  # AVColorSpace, for the encoder
    range_tag: int  # AVColorRange
    high_depth: bool  # > 8 bits per component: convert through 16-bit RGB

    @classmethod
    def of(cls, frame: av.VideoFrame) -> "ColorSpec":
        tag = int(frame.colorspace or 2)
        matrix = _MATRIX.get(tag) or (Colorspace.ITU709 if frame.height >= 720 else Colorspace.ITU601)
        if tag not in _MATRIX:
            tag = 1 if matrix == Colorspace.ITU709 else 6
        rtag = int(frame.color_range or 0)
        if rtag not in (1, 2):
            rtag = 2 if frame.format.name in _FULL_RANGE_FORMATS else 1
        depth = max((c.bits for c in frame.format.components), default=8)
        return cls(matrix, ColorRange(rtag), tag, rtag, depth > 8)

    @property
    def rgb_format(self) -> str:
        return "rgb48le" if self.high_depth else "rgb24"


def frame_to_tensor(frame: av.VideoFrame, spec: ColorSpec) -> torch.Tensor:
    """A decoded frame as float RGB CHW in [0, 1]."""
    rgb = frame.reformat(
        format=spec.rgb_format, src_colorspace=spec.matrix, src_color_range=spec.range, dst_color_range=ColorRange.JPEG
    )
    arr = rgb.to_ndarray()
    scale = 65535.0 if spec.high_depth else 255.0
    return torch.from_numpy(arr.astype(np.float32)).permute(2, 0, 1).div_(scale)


def tensor_to_frame(tensor: torch.Tensor, spec: ColorSpec, pix_fmt: str) -> av.VideoFrame:
    """Float RGB CHW in [0, 1] to a frame in ``pix_fmt`` using the source's matrix and range."""
    high = spec.high_depth
    scale = 65535.0 if high else 255.0
    arr = tensor.detach().float().clamp(0, 1).mul(scale).round_().permute(1, 2, 0).contiguous().cpu().numpy()
    arr = arr.astype(np.uint16 if high else np.uint8)
    rgb = av.VideoFrame.from_ndarray(arr, format=spec.rgb_format)
    rgb.color_range = ColorRange.JPEG
    out = rgb.reformat(
        format=pix_fmt, dst_colorspace=spec.matrix, src_color_range=ColorRange.JPEG, dst_color_range=spec.range
    )
    out.colorspace = spec.colorspace_tag
    out.color_range = spec.range_tag
    return out
