"""``./dev demo``: the learned model by default, and a before/after pair of the same frame."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.media_factory import code
from vsr_api.local.demo import before_after, build_parser


def gray_at(png: Path, x: int, y: int) -> int:
    """One pixel's grey level, read back by the ffmpeg CLI (not by the code that wrote it)."""
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(png), "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        capture_output=True,
        check=True,
    ).stdout
    width = int(
        subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "stream=width", "-of", "csv=p=0", str(png)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    return raw[y * width + x]


def test_demo_runs_the_learned_model_by_default() -> None:
    args = build_parser().parse_args(["sample.mp4", "-o", "out.mp4"])
    assert args.model == "realesr-animevideov3"


def test_demo_writes_the_same_frame_of_source_and_result_as_pngs(make_case, tmp_path: Path) -> None:
    source = make_case("cfr25")  # the left half's grey level encodes the frame index
    result = tmp_path / "result.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-i",
            str(source),
            "-vf",
            "scale=iw*2:ih*2",
            "-c:v",
            "libx264",
            "-crf",
            "0",
            str(result),
        ],
        check=True,
    )
    before, after = before_after(source, result, 7)
    assert (before.name, after.name) == ("result_frame7_before.png", "result_frame7_after.png")
    grey = (code(7) - 16) * 255 / 219  # the video's limited-range luma as full-range RGB
    assert abs(gray_at(before, 8, 24) - grey) <= 3
    assert abs(gray_at(after, 16, 48) - grey) <= 3  # neighbouring frames differ by 37 levels
