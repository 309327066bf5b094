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

    @property
    def planar_format(self) -> str:
        """Planar RGB (swscale's G, B, R plane order): each plane maps to one tensor channel
        with no transposition."""
        return "gbrp16le" if self.high_depth else "gbrp"

    @property
    def peak(self) -> float:
        return 65535.0 if self.high_depth else 255.0

    @property
    def dtype(self) -> type:
        return np.uint16 if self.high_depth else np.uint8


# Tensor channel (R, G, B) held by each plane of a gbrp frame.
_PLANE_CHANNEL = (1, 2, 0)


def _plane_view(plane: "av.video.plane.VideoPlane", dtype: type, width: int) -> np.ndarray:
    """A plane's pixels as a (height, width) array over the frame's own buffer."""
    rows = np.frombuffer(plane, dtype).reshape(plane.height, plane.line_size // np.dtype(dtype).itemsize)
    return rows[:, :width]


def frame_to_tensor(frame: av.VideoFrame, spec: ColorSpec) -> torch.Tensor:
    """A decoded frame as float RGB CHW in [0, 1].

    swscale writes planar RGB; each plane is then divided straight into its float channel
    (no interleaved RGB, no intermediate float copy).
    """
    rgb = frame.reformat(
        format=spec.planar_format,
        src_colorspace=spec.matrix,
        src_color_range=spec.range,
        dst_color_range=ColorRange.JPEG,
    )
    out = torch.empty((3, frame.height, frame.width), dtype=torch.float32)
    for plane, channel in zip(rgb.planes, _PLANE_CHANNEL):
        pixels = _plane_view(plane, spec.dtype, frame.width)
        if spec.high_depth:  # torch 1.13 has no uint16
            pixels = pixels.astype(np.int32)
        torch.div(torch.from_numpy(pixels), spec.peak, out=out[channel])
    return out


def tensor_to_frame(tensor: torch.Tensor, spec: ColorSpec, pix_fmt: str, consume: bool = False) -> av.VideoFrame:
    """Float RGB CHW in [0, 1] to a frame in ``pix_fmt`` using the source's matrix and range.

    ``consume``: the tensor is not needed afterwards and is scaled in place (no allocation
    of a full-size float buffer). Each channel is cast straight into its plane of a planar
    RGB frame, which swscale then converts.
    """
    peak = spec.peak
    t = tensor.detach().float().cpu()
    scaled = (t.mul_(peak) if consume else t.mul(peak)).clamp_(0.0, peak).round_()
    height, width = scaled.shape[1], scaled.shape[2]
    rgb = av.VideoFrame(width, height, spec.planar_format)
    for plane, channel in zip(rgb.planes, _PLANE_CHANNEL):
        np.copyto(_plane_view(plane, spec.dtype, width), scaled[channel].numpy(), casting="unsafe")
    rgb.color_range = ColorRange.JPEG
    out = rgb.reformat(
        format=pix_fmt,
        dst_colorspace=spec.matrix,
        src_color_range=ColorRange.JPEG,
        dst_color_range=spec.range,
    )
    out.colorspace = spec.colorspace_tag
    out.color_range = spec.range_tag
    return out
