"""Single frames as PNG: the debug samples of the upscale stage and the demo's before/after pair."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av


def png_bytes(rgb: Any) -> bytes:
    """An RGB24 array (height, width, 3) encoded as PNG by FFmpeg (no imaging library needed)."""
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = frame.width, frame.height, "rgb24"
    return b"".join(bytes(p) for p in codec.encode(frame)) + b"".join(bytes(p) for p in codec.encode(None))


def frame_png(video: Path, index: int) -> bytes:
    """Frame ``index`` (in presentation order, from 0) of a video's first video stream, as PNG."""
    with av.open(str(video)) as container:
        for n, frame in enumerate(container.decode(video=0)):
            if n == index:
                return png_bytes(frame.to_ndarray(format="rgb24"))
    raise IndexError(f"{video} has fewer than {index + 1} frames")


def write_png(data: bytes, path: Path) -> Path:
    """Written under a temporary name, then renamed: never a half-written image."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path
