"""MP4 writer options that keep a stream's exact time base.

The mov muxer otherwise picks its own video timescale (1/1000 becomes 1/16000) and writes
edit lists in a 1/1000 movie timescale, which shifts 29.97 fps content.
"""

from __future__ import annotations

from fractions import Fraction


def mp4_options(video_time_base: Fraction, faststart: bool = False) -> dict:
    den = str(Fraction(video_time_base).denominator)
    opts = {"movie_timescale": den, "video_track_timescale": den}
    if faststart:
        opts["movflags"] = "+faststart"
    return opts


def rescale_exact(pts: int, from_tb: Fraction, to_tb: Fraction) -> int:
    """``pts`` in ``to_tb`` units; rounds only if the value does not fall on a tick."""
    value = Fraction(pts) * Fraction(from_tb) / Fraction(to_tb)
    return value.numerator // value.denominator if value.denominator == 1 else round(value)
