"""Small videos made with the ffmpeg CLI (lavfi sources), for the API tests."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


def small_video(path: Path, seconds: float = 2, size: str = "64x48", fps: int = 25) -> Path:
    """H.264 + AAC, faststart: 64x48, 2 s, 25 fps by default (50 frames)."""
    ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-movflags", "+faststart", str(path),
    )  # fmt: skip
    return path


def audio_only(path: Path) -> Path:
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "1", "-c:a", "aac", str(path))
    return path


def large_video(path: Path, faststart: bool, seconds: int = 12) -> Path:
    """Tens of MB quickly: lossless x264 of a busy pattern."""
    flags = ["-movflags", "+faststart"] if faststart else []
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-t", str(seconds),
        "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", *flags, str(path),
    )  # fmt: skip
    return path


def ffprobe_video(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames",
         "-show_entries", "stream=width,height,nb_read_frames", "-of", "json", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    stream = json.loads(out)["streams"][0]
    return {"width": stream["width"], "height": stream["height"], "frames": int(stream["nb_read_frames"])}


def moov_offset(path: Path) -> tuple[int, int]:
    """(offset, size) of the moov atom: where an MP4's index lies."""
    data = path.read_bytes()
    pos = 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if size == 1:
            size = int.from_bytes(data[pos + 8 : pos + 16], "big")
        if kind == b"moov":
            return pos, size
        if size < 8:
            break
        pos += size
    raise ValueError("no moov atom")
