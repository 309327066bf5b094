"""Probe a video with PyAV through a ranged reader: header bytes only, never the whole file."""

from __future__ import annotations

import av

from vsr_api.ports import MediaInfo, ObjectInfo, Storage
from vsr_client.contract import ErrorCode, VsrError

# Demuxers that accept almost anything or a single still picture: not videos to upscale.
_NOT_VIDEO_FORMATS = {"tty", "image2", "lavfi", "data", "txt", "mjpeg", "png_pipe", "jpeg_pipe"}
_NOT_VIDEO_CODECS = {"ansi", "bintext", "xbin", "idf", "png", "mjpeg", "gif", "bmp"}
# Bound what FFmpeg may read while looking for stream parameters (its default is 5 MB).
_PROBE_OPTIONS = {"probesize": "262144", "analyzeduration": "2000000"}


class AvProber:
    def probe(self, storage: Storage, obj: ObjectInfo) -> MediaInfo:
        reader = storage.open_ranged(obj)
        try:
            try:
                container = av.open(reader, mode="r", options=_PROBE_OPTIONS, metadata_errors="ignore")
            except (av.error.FFmpegError, ValueError):
                raise VsrError(ErrorCode.NOT_A_VIDEO, f"{obj.key!r} is not a video file", "key") from None
            with container:
                return _describe(container, obj, reader)
        finally:
            reader.close()


def _describe(container: av.container.InputContainer, obj: ObjectInfo, reader) -> MediaInfo:
    fmt = container.format.name
    if set(fmt.split(",")) & _NOT_VIDEO_FORMATS or fmt.endswith("_pipe"):
        raise VsrError(ErrorCode.NOT_A_VIDEO, f"{obj.key!r} is not a video file (detected {fmt})", "key")
    videos = [
        s
        for s in container.streams.video
        if not s.disposition & av.stream.Disposition.attached_pic
        and (s.codec_context is None or s.codec_context.name not in _NOT_VIDEO_CODECS)
    ]
    if not videos:
        if container.streams.audio:
            raise VsrError(ErrorCode.AUDIO_ONLY, f"{obj.key!r} has audio but no video stream", "key")
        raise VsrError(ErrorCode.NOT_A_VIDEO, f"{obj.key!r} has no video stream", "key")
    vs = videos[0]
    cc = vs.codec_context
    if not cc.width or not cc.height:
        raise VsrError(ErrorCode.CORRUPT_INPUT, f"{obj.key!r}: video stream has no usable size", "key")
    if vs.duration is not None and vs.time_base:
        duration = float(vs.duration * vs.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    else:
        raise VsrError(ErrorCode.CORRUPT_INPUT, f"{obj.key!r}: video has no known duration", "key")
    return MediaInfo(
        format=fmt,
        duration=duration,
        width=cc.width,
        height=cc.height,
        codec=cc.name,
        audio_streams=len(container.streams.audio),
        bytes_read=reader.bytes_read,
    )
