"""The segment encoder: settings that make independently encoded parts joinable."""

from __future__ import annotations

from fractions import Fraction
from typing import Optional

import av

from vsr_client.contract import EncodeSettings
from vsr_worker.media.frames import ColorSpec


def output_pix_fmt(settings: EncodeSettings, spec: ColorSpec) -> str:
    """yuv420p everywhere it plays; 10-bit stays 10-bit unless 8-bit is asked for."""
    if settings.bit_depth == "10" or (settings.bit_depth == "source" and spec.high_depth):
        return "yuv420p10le"
    return "yuv420p"


def add_video_encoder(
    container: av.container.OutputContainer,
    settings: EncodeSettings,
    width: int,
    height: int,
    time_base: Fraction,
    rate: Optional[Fraction],
    spec: ColorSpec,
    color_primaries: int = 2,
    color_trc: int = 2,
    threads: int = 0,
) -> av.video.stream.VideoStream:
    """An encoder stream whose timestamps are the source's (time base = source time base).

    Every segment gets identical options so the parts' SPS/PPS match and merge can join
    them without re-encoding: no B-frames (dts == pts), x264 ``stitchable``.
    """
    params = "stitchable=1:bframes=0" if settings.codec == "libx264" else "bframes=0:repeat-headers=0"
    key = "x264-params" if settings.codec == "libx264" else "x265-params"
    stream = container.add_stream(
        settings.codec,
        rate=rate,
        options={"crf": str(settings.crf), "preset": settings.preset, key: params},
    )
    cc = stream.codec_context
    cc.width, cc.height = width, height
    cc.pix_fmt = output_pix_fmt(settings, spec)
    cc.time_base = time_base
    stream.time_base = time_base
    cc.colorspace = spec.colorspace_tag
    cc.color_range = spec.range_tag
    if color_primaries not in (0, 2):
        cc.color_primaries = color_primaries
    if color_trc not in (0, 2):
        cc.color_trc = color_trc
    cc.thread_count = threads
    return stream
