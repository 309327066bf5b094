"""Test videos made with the ffmpeg CLI (lavfi sources), each frame carrying its index.

The left half of every frame is a flat grey whose level encodes the frame number
(``code(n) = 28 + (37 n mod 200)``), so a dropped, duplicated or reordered frame shows up
in the output whatever the scaling; the right half is ffmpeg's moving test pattern.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path


def code(n: int) -> int:
    return 28 + (37 * n) % 200


def _index_filter(width: int, height: int, rate: str, seconds: float) -> str:
    return (
        f"testsrc2=size={width}x{height}:rate={rate}:duration={seconds},format=yuv444p,"
        "geq=lum='if(lt(X\\,W/2)\\,28+mod(N*37\\,200)\\,lum(X\\,Y))'"
        ":cb='if(lt(X\\,W/2)\\,128\\,cb(X\\,Y))':cr='if(lt(X\\,W/2)\\,128\\,cr(X\\,Y))'"
    )


@dataclass(frozen=True)
class VideoSpec:
    """A generated test video and how to run it through the pipeline."""

    name: str
    width: int = 64
    height: int = 48
    rate: str = "25"
    seconds: float = 4.0
    segment_time: float = 1.0
    scale: int = 2
    pix_fmt: str = "yuv420p"
    audio_tracks: tuple[str, ...] = ("eng",)
    subtitles: tuple[str, ...] = ()
    x264: str = "keyint=12:min-keyint=12"
    bframes: int = 0
    vfr: bool = False
    rotate: int = 0
    container: str = "mp4"
    extra: tuple[str, ...] = field(default=())

    @property
    def filename(self) -> str:
        return f"{self.name}.{self.container}"


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")


def make_video(spec: VideoSpec, directory: Path) -> Path:
    out = directory / spec.filename
    if out.exists():
        return out
    tmp = directory / f"tmp-{spec.filename}"
    cmd = [
        "ffmpeg",
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        _index_filter(spec.width, spec.height, spec.rate, spec.seconds),
    ]
    for i, _ in enumerate(spec.audio_tracks):
        cmd += ["-f", "lavfi", "-i", f"sine=frequency={440 * (i + 1)}:duration={spec.seconds}:sample_rate=48000"]
    srt = None
    if spec.subtitles:
        srt = directory / f"{spec.name}.srt"
        srt.write_text("1\n00:00:00,500 --> 00:00:01,500\nhello\n\n2\n00:00:02,000 --> 00:00:03,000\nworld\n")
        for _ in spec.subtitles:
            cmd += ["-i", str(srt)]
    n_inputs = 1 + len(spec.audio_tracks) + len(spec.subtitles)
    for i in range(n_inputs):
        cmd += ["-map", f"{i}:0"]
    vf = []
    if spec.vfr:  # irregular frame durations: 40, 53, 53, 40 ms ...
        vf.append("settb=1/1000,setpts='N*40+mod(N\\,3)*13'")
    if vf:
        cmd += ["-vf", ",".join(vf)]
    cmd += [
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-pix_fmt",
        spec.pix_fmt,
        "-bf",
        str(spec.bframes),
        "-x264-params",
        spec.x264,
    ]
    if spec.vfr:
        cmd += ["-fps_mode", "passthrough", "-enc_time_base", "1/1000", "-video_track_timescale", "1000"]
    if spec.audio_tracks:
        cmd += ["-c:a", "aac", "-b:a", "64k"]
        for i, lang in enumerate(spec.audio_tracks):
            cmd += [f"-metadata:s:a:{i}", f"language={lang}"]
    if spec.subtitles:
        cmd += ["-c:s", "mov_text" if spec.container == "mp4" else "srt"]
        for i, lang in enumerate(spec.subtitles):
            cmd += [f"-metadata:s:s:{i}", f"language={lang}"]
    cmd += [*spec.extra, str(tmp if spec.rotate else out)]
    _run(cmd)
    if spec.rotate:  # ffmpeg 5.1 drops rotate metadata when encoding: set it in a copy pass
        _run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-y",
                "-i",
                str(tmp),
                "-map",
                "0",
                "-c",
                "copy",
                "-metadata:s:v:0",
                f"rotate={spec.rotate}",
                str(out),
            ]
        )
        tmp.unlink()
    return out


CASES: dict[str, VideoSpec] = {
    s.name: s
    for s in [
        VideoSpec("cfr25"),
        VideoSpec("ntsc_bframes", rate="30000/1001", bframes=3, x264="keyint=15:min-keyint=15"),
        VideoSpec("vfr", vfr=True),
        VideoSpec("odd_size", width=35, height=19, pix_fmt="yuv444p", scale=4, seconds=3.0),
        VideoSpec("rotated", rotate=90, seconds=3.0),
        VideoSpec("no_audio", audio_tracks=()),
        VideoSpec("tracks_and_subs", audio_tracks=("eng", "fra"), subtitles=("eng",), seconds=3.5),
        VideoSpec("long_gop", x264="keyint=1000:min-keyint=1000:scenecut=0", seconds=5.0),
        VideoSpec("not_multiple", seconds=4.5, segment_time=2.0),
        VideoSpec("shorter_than_segment", seconds=0.8, segment_time=2.0),
        VideoSpec("ten_bit", pix_fmt="yuv420p10le", seconds=3.0),
        # Keyframes every 26 frames at 25 fps with 3 B-frames: segment boundaries (every 25
        # frames) fall on leading pictures, which reference the GOP before their keyframe.
        VideoSpec("open_gop", bframes=3, x264="keyint=26:min-keyint=26:open-gop=1:scenecut=0:b-adapt=0"),
        VideoSpec("mkv_srt", container="mkv", subtitles=("eng",), seconds=3.0, audio_tracks=("eng",)),
    ]
}
