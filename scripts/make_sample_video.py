"""Write a small sample video (moving pattern + tone) for the demo, using PyAV only.

python scripts/make_sample_video.py OUT.mp4 [--size 320x180] [--seconds 6] [--fps 25]

The default (320x180, 6 s, 150 frames) is sized for `./dev demo` to upscale it with the learned
model in about a minute on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import math
from fractions import Fraction

import av
import numpy as np


def make_sample(path: str, width: int = 320, height: int = 180, seconds: float = 6.0, fps: int = 25) -> None:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    with av.open(path, "w", options={"movflags": "+faststart"}) as out:
        video = out.add_stream("libx264", rate=fps, options={"crf": "20", "preset": "veryfast"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = out.add_stream("aac", rate=48000)
        audio.layout = "stereo"
        frames = int(seconds * fps)
        for i in range(frames):
            t = i / fps
            # Fine stripes and circles that move: aliasing and edges show what upscaling does.
            r = 128 + 127 * np.sin((xx + 40 * t) / 6.0) * np.cos(yy / 9.0)
            g = 128 + 127 * np.sin(np.hypot(xx - width / 2, yy - height / 2) / 5.0 - 3 * t)
            b = np.where(((xx // 16 + yy // 16 + i // 5) % 2) == 0, 230, 25)
            img = np.stack([r, g, b], axis=-1).clip(0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        samples = 1024
        for k in range(math.ceil(seconds * 48000 / samples)):
            n = np.arange(k * samples, (k + 1) * samples)
            tone = (0.2 * np.sin(2 * math.pi * 440 * n / 48000)).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
            frame.sample_rate = 48000
            frame.pts = k * samples
            for packet in audio.encode(frame):
                out.mux(packet)
        for packet in audio.encode():
            out.mux(packet)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output")
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--fps", type=int, default=25)
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    make_sample(args.output, w, h, args.seconds, args.fps)
    print(f"sample video: {args.output} ({w}x{h}, {args.seconds:g}s, {args.fps} fps)")


if __name__ == "__main__":
    main()
