"""ffprobe/ffmpeg CLI as the independent oracle for what the pipeline wrote."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np


def ffprobe_json(path: Path, *args: str) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", *args, str(path)], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out)


def streams(path: Path) -> list[dict]:
    return ffprobe_json(path, "-show_streams")["streams"]


def video_frame_times(path: Path) -> list[str]:
    frames = ffprobe_json(
        path, "-select_streams", "v:0", "-show_frames", "-show_entries", "frame=pts_time,best_effort_timestamp_time"
    )["frames"]
    return [f.get("pts_time", f.get("best_effort_timestamp_time")) for f in frames]


def packet_hashes(path: Path, stream_index: int) -> list[tuple[str, str]]:
    pkts = ffprobe_json(
        path,
        "-select_streams",
        str(stream_index),
        "-show_packets",
        "-show_data_hash",
        "sha256",
        "-show_entries",
        "packet=pts,data_hash",
    )["packets"]
    return [(p.get("pts"), p["data_hash"]) for p in pkts]


def gray_frames(path: Path, width: int, height: int) -> np.ndarray:
    """Every stored frame (no autorotate, no frame-rate conversion) as its 8-bit Y plane."""
    raw = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-noautorotate",
            "-i",
            str(path),
            "-map",
            "0:v:0",
            "-fps_mode",
            "passthrough",
            "-vf",
            "format=gray",
            "-f",
            "rawvideo",
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width)


def frame_codes(frames: np.ndarray) -> list[int]:
    """The grey level of each frame's left half (inner pixels, away from the edge)."""
    h, w = frames.shape[1:]
    half = w // 2
    region = frames[:, 1 : h - 1, 1 : max(2, half - 2)]
    return [round(float(v)) for v in region.reshape(len(frames), -1).mean(axis=1)]
