"""What a worker needs to know about a source video, read with PyAV."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional

import av

from vsr_client.codes import ErrorCode, VsrError

# Demuxers that accept almost anything or a single still picture: not videos to upscale.
_NOT_VIDEO_FORMATS = {"tty", "image2", "lavfi", "data", "txt"}
_NOT_VIDEO_CODECS = {"ansi", "bintext", "xbin", "idf"}
# Leading bytes of containers we recognise: an unreadable file that starts like one of these
# is a damaged video rather than something else.
_CONTAINER_MAGIC = (b"\x1a\x45\xdf\xa3", b"RIFF", b"OggS", b"FLV", b"\x00\x00\x01\xba", b"G")


@dataclass
class StreamInfo:
    index: int
    type: str
    codec: str
    language: Optional[str] = None


@dataclass
class VideoInfo:
    """The primary video stream of a file and a summary of the rest."""

    format: str
    duration: float
    video_index: int
    codec: str
    width: int
    height: int
    pix_fmt: str
    bit_depth: int
    time_base: Fraction
    frame_rate: Optional[Fraction]
    frames: int
    rotation: int
    streams: list[StreamInfo] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["time_base"] = str(self.time_base)
        data["frame_rate"] = str(self.frame_rate) if self.frame_rate else None
        return data


def primary_video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    """The first video stream that is not cover art."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    raise LookupError("no video stream")


def _looks_like_container(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(12)
    return head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide") or head.startswith(_CONTAINER_MAGIC)


def open_video(path: Path) -> av.container.InputContainer:
    """Open ``path`` as a video container, turning every failure into a VsrError."""
    if not path.exists():
        raise VsrError(ErrorCode.INPUT_NOT_FOUND, f"input not found: {path}")
    if path.is_dir():
        raise VsrError(ErrorCode.NOT_A_VIDEO, f"input is a directory, not a video: {path}")
    if os.path.getsize(path) == 0:
        raise VsrError(ErrorCode.EMPTY_INPUT, f"input is empty (0 bytes): {path}")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        if _looks_like_container(path):
            raise VsrError(ErrorCode.CORRUPT_INPUT, f"input is damaged or truncated: {path} ({exc.strerror})") from None
        raise VsrError(ErrorCode.NOT_A_VIDEO, f"input is not a video file: {path}") from None
    fmt = container.format.name
    if set(fmt.split(",")) & _NOT_VIDEO_FORMATS or fmt.endswith("_pipe"):
        container.close()
        raise VsrError(ErrorCode.NOT_A_VIDEO, f"input is not a video file: {path} (detected {fmt})")
    return container


def probe(path: Path) -> VideoInfo:
    """Probe ``path``; decodes only the first frame (for rotation and to prove it decodes)."""
    with open_video(path) as container:
        try:
            vs = primary_video_stream(container)
        except LookupError:
            if container.streams.audio:
                raise VsrError(ErrorCode.AUDIO_ONLY, f"input has audio but no video stream: {path}") from None
            raise VsrError(ErrorCode.NOT_A_VIDEO, f"input has no video stream: {path}") from None
        cc = vs.codec_context
        if cc.name in _NOT_VIDEO_CODECS:
            raise VsrError(ErrorCode.NOT_A_VIDEO, f"input is not a video file: {path} (codec {cc.name})")
        if not cc.width or not cc.height or vs.time_base is None:
            raise VsrError(ErrorCode.CORRUPT_INPUT, f"video stream has no usable size or time base: {path}")
        first = _first_frame(container, vs, path)
        duration = _duration_seconds(container, vs)
        fmt = first.format
        depth = max(c.bits for c in fmt.components) if fmt.components else 8
        streams = [
            StreamInfo(
                index=s.index,
                type=s.type,
                codec=s.codec_context.name if s.codec_context else "none",
                language=s.metadata.get("language"),
            )
            for s in container.streams
        ]
        return VideoInfo(
            format=container.format.name,
            duration=duration,
            video_index=vs.index,
            codec=cc.name,
            width=cc.width,
            height=cc.height,
            pix_fmt=fmt.name,
            bit_depth=depth,
            time_base=Fraction(vs.time_base),
            frame_rate=Fraction(vs.average_rate) if vs.average_rate else None,
            frames=vs.frames,
            rotation=int(first.rotation or 0),
            streams=streams,
        )


def _first_frame(container: av.container.InputContainer, vs: av.video.stream.VideoStream, path: Path) -> av.VideoFrame:
    try:
        for frame in container.decode(vs):
            return frame
    except av.error.FFmpegError as exc:
        raise VsrError(ErrorCode.CORRUPT_INPUT, f"video stream does not decode: {path} ({exc.strerror})") from None
    raise VsrError(ErrorCode.CORRUPT_INPUT, f"video stream holds no decodable frame: {path}")


def _duration_seconds(container: av.container.InputContainer, vs: av.video.stream.VideoStream) -> float:
    if vs.duration is not None and vs.time_base:
        return float(vs.duration * vs.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    raise VsrError(ErrorCode.CORRUPT_INPUT, "video has no known duration")
