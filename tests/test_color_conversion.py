"""Frames reach the model as RGB decoded with the right matrix and range, and go back."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from vsr_worker.media.frames import ColorSpec, frame_to_tensor, tensor_to_frame

# Pure red (255, 0, 0) in limited-range YCbCr.
RED_BT709 = (63, 102, 240)
RED_BT601 = (81, 90, 240)


def _yuv_frame(width: int, height: int, yuv: tuple[int, int, int], colorspace: int | None) -> av.VideoFrame:
    frame = av.VideoFrame(width, height, "yuv420p")
    for plane, value in zip(frame.planes, yuv):
        arr = np.full((plane.height, plane.line_size), value, np.uint8)
        plane.update(arr)
    if colorspace is not None:
        frame.colorspace = colorspace
    frame.color_range = 1
    return frame


@pytest.mark.parametrize(
    ("yuv", "colorspace", "height"),
    [(RED_BT709, 1, 64), (RED_BT601, 6, 64), (RED_BT709, None, 720), (RED_BT601, None, 480)],
)
def test_red_decodes_to_red_with_the_tagged_or_conventional_matrix(yuv, colorspace, height):
    frame = _yuv_frame(32, height, yuv, colorspace)
    rgb = frame_to_tensor(frame, ColorSpec.of(frame))
    mean = rgb.mean(dim=(1, 2))
    assert torch.allclose(mean, torch.tensor([1.0, 0.0, 0.0]), atol=0.03), mean


def test_wrong_matrix_would_be_visible():
    """The BT.601 reading of BT.709 red is visibly off, so the test above has teeth."""
    frame = _yuv_frame(32, 64, RED_BT709, 6)
    mean = frame_to_tensor(frame, ColorSpec.of(frame)).mean(dim=(1, 2))
    assert not torch.allclose(mean, torch.tensor([1.0, 0.0, 0.0]), atol=0.03)


@pytest.mark.parametrize("colorspace", [1, 6])
def test_round_trip_keeps_yuv_values(colorspace):
    yuv = (120, 100, 150)
    frame = _yuv_frame(32, 32, yuv, colorspace)
    spec = ColorSpec.of(frame)
    back = tensor_to_frame(frame_to_tensor(frame, spec), spec, "yuv420p")
    assert back.colorspace == colorspace and back.color_range == 1
    for plane, value in zip(back.planes, yuv):
        arr = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
        assert abs(float(arr.mean()) - value) <= 1.0


def test_ten_bit_goes_through_sixteen_bit_rgb():
    frame = av.VideoFrame(16, 16, "yuv420p10le")
    frame.colorspace, frame.color_range = 1, 1
    spec = ColorSpec.of(frame)
    assert spec.high_depth and spec.rgb_format == "rgb48le"
    out = tensor_to_frame(frame_to_tensor(frame, spec), spec, "yuv420p10le")
    assert out.format.name == "yuv420p10le"
